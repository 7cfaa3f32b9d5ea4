"""Every Python and shell example of README.md and docs/*.md runs, so that none can rot.

Each document's fenced ``python`` and ``bash``/``sh`` blocks run in order in one fresh temporary
folder (files written by one block are there for the next): a Python block as a script
(``python block.py``, so a missing ``if __name__ == "__main__":`` guard shows), a shell block with
``bash -e`` and ``overtensor`` / ``python`` on ``PATH`` meaning this checkout. An HTML comment
right before a block adapts it (see docs/docs-check.md):

* ``<!-- docs-check: skip REASON -->``: not run (REASON is required);
* ``<!-- docs-check: sub OLD => NEW -->``: replace text before running (a smaller preset);
* ``<!-- docs-check: drop TEXT -- REASON -->``: leave out the lines containing TEXT;
* ``<!-- docs-check: file NAME -->``: write the block to NAME instead of running it;
* ``<!-- docs-check: prelude CODE -->``: Python run before the block (names a fragment uses).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*docs-check:\s*(\w+)\s*(.*?)\s*-->\s*$")
TIMEOUT = 240


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    code: str
    markers: list[tuple[str, str]] = field(default_factory=list)

    def marker(self, kind: str) -> list[str]:
        return [arg for k, arg in self.markers if k == kind]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` with the docs-check markers just above each."""
    out: list[Block] = []
    pending: list[tuple[str, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        fence = FENCE.match(lines[i])
        if m:
            kind, arg = m.group(1), m.group(2)
            if kind not in ("skip", "sub", "drop", "file", "prelude"):
                raise ValueError(f"{path.name}:{i + 1}: unknown docs-check marker {kind!r}")
            if kind == "skip" and not arg:
                raise ValueError(f"{path.name}:{i + 1}: docs-check skip needs a reason")
            pending.append((kind, arg))
        elif fence:
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(Block(path.name, start + 1, fence.group(1).lower(), "\n".join(body) + "\n",
                             pending))
            pending = []
        elif lines[i].strip():
            pending = []  # markers apply to the block right below them only
        i += 1
    return out


def prepared(block: Block) -> str:
    code = block.code
    for arg in block.marker("sub"):
        old, sep, new = arg.partition(" => ")
        if not sep or old not in code:
            raise AssertionError(f"{block.doc}:{block.line}: sub {old!r} matches nothing")
        code = code.replace(old, new)
    for arg in block.marker("drop"):
        text, sep, reason = arg.partition(" -- ")
        if not sep or not reason.strip():
            raise AssertionError(f"{block.doc}:{block.line}: drop needs 'TEXT -- REASON'")
        kept = [ln for ln in code.splitlines() if text not in ln]
        if len(kept) == len(code.splitlines()):
            raise AssertionError(f"{block.doc}:{block.line}: drop {text!r} matches nothing")
        code = "\n".join(kept) + "\n"
    prelude = "\n".join(block.marker("prelude"))
    return (prelude + "\n" + code) if prelude else code


def _shims(bindir: Path) -> None:
    """``overtensor`` and ``python`` on PATH: this checkout with the test's interpreter."""
    bindir.mkdir()
    (bindir / "overtensor").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m overtensor.cli.main "$@"\n')
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in bindir.iterdir():
        shim.chmod(0o755)


def _run_document(doc: Path, tmp_path: Path) -> int:
    work = tmp_path / "work"
    work.mkdir()
    _shims(tmp_path / "bin")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200",
           "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    ran = 0
    for k, block in enumerate(blocks(doc)):
        if block.marker("file"):
            (work / block.marker("file")[0]).write_text(prepared(block))
            continue
        if block.lang not in RUNNABLE or block.marker("skip"):
            continue
        code = prepared(block)
        if RUNNABLE[block.lang] == "python":
            script = work / f"_docs_block_{k}.py"
            script.write_text(code)
            cmd = [sys.executable, script.name]
        else:
            cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, (
            f"{block.doc}:{block.line}: the {block.lang} example failed (exit {proc.returncode})\n"
            f"--- code ---\n{code}--- stdout ---\n{proc.stdout[-3000:]}--- stderr ---\n"
            f"{proc.stderr[-3000:]}")
        ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_example_of_the_document_runs(doc, tmp_path):
    runnable = [b for b in blocks(doc) if b.lang in RUNNABLE]
    if not runnable:
        pytest.skip(f"{doc.name} has no Python or shell example")
    ran = _run_document(doc, tmp_path)
    skipped = [b for b in runnable if b.marker("skip")]
    assert ran + len(skipped) == len([b for b in runnable if not b.marker("file")])


def test_markers_are_parsed_and_applied(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("<!-- docs-check: sub 1000 => 10 -->\n<!-- docs-check: drop slow -- minutes -->\n"
                   "```bash\nseq 1000\nslow thing\n```\n\n<!-- docs-check: skip needs a GPU -->\n"
                   "```python\nimport cuda\n```\n\n<!-- docs-check: file a.yaml -->\n```yaml\nk: 1\n```\n"
                   "<!-- docs-check: sub 1 => 2 -->\nsome text\n```python\nx = 1\n```\n")
    b = blocks(doc)
    assert [x.lang for x in b] == ["bash", "python", "yaml", "python"]
    assert prepared(b[0]) == "seq 10\n"
    assert b[1].marker("skip") == ["needs a GPU"]
    assert b[2].marker("file") == ["a.yaml"]
    assert b[3].markers == []  # markers apply only to the block right below them
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- docs-check: skip -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="skip needs a reason"):
        blocks(bad)
