"""Every Python and shell example of README.md and docs/*.md runs as written, so that none can rot.

Each document's fenced ``python`` and ``bash``/``sh`` blocks run in file order in one fresh
temporary folder (files written by one block are there for the next), as a reader pasting them
would: the Python blocks of a document all run in **one fresh interpreter** (a block sees the
names of the Python blocks before it in the same document, nothing else: no hidden preludes), as
the main module of a script made of those blocks (so a missing ``if __name__ == "__main__":``
guard shows when a block starts worker processes); a shell block runs with ``bash -e`` and
``overtensor`` / ``python`` on ``PATH`` meaning this checkout. An HTML comment right before a
block adapts it, visibly in the file's source (see docs/docs-check.md):

* ``<!-- docs-check: skip REASON -->``: not run (REASON is required);
* ``<!-- docs-check: sub OLD => NEW -->``: replace text before running (a smaller preset);
* ``<!-- docs-check: drop TEXT -- REASON -->``: leave out the lines containing TEXT;
* ``<!-- docs-check: file NAME -->``: write the block to NAME instead of running it.
"""

from __future__ import annotations

import json
import os
import re
import select
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
#: The markers a document may use (docs/docs-check.md). There is no "prelude": a block needs only
#: the blocks before it in the same file.
MARKERS = ("skip", "sub", "drop", "file")


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
            if kind not in MARKERS:
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
    return code


def _shims(bindir: Path) -> None:
    """``overtensor`` and ``python`` on PATH: this checkout with the test's interpreter."""
    bindir.mkdir()
    (bindir / "overtensor").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m overtensor.cli.main "$@"\n')
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in bindir.iterdir():
        shim.chmod(0o755)


#: The interpreter that runs a document's Python blocks: it reads one request per line on stdin
#: (the block's file and the files for its output), runs the block in the namespace of a fresh
#: ``__main__`` module whose ``__file__`` is the script of all the document's Python blocks so far
#: (worker processes started by a block re-import that, as they would a user's script), with file
#: descriptors 1 and 2 sent to the block's output files, and answers one line: the exit status.
#: Its own names stay out of the blocks' namespace.
DRIVER = r"""
import json as _json, os as _os, sys as _sys, traceback as _tb, types as _types

def _serve():
    answer = _os.fdopen(_os.dup(1), "w")
    main = _types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    _sys.modules["__main__"] = main
    for line in _sys.stdin:
        req = _json.loads(line)
        with open(req["script"], "a", encoding="utf-8") as f:
            f.write(open(req["block"], encoding="utf-8").read() + "\n")
        main.__file__ = req["script"]
        _sys.argv = [req["script"]]
        out, err = open(req["out"], "w"), open(req["err"], "w")
        saved = _os.dup(1), _os.dup(2)
        _sys.stdout.flush(); _sys.stderr.flush()
        _os.dup2(out.fileno(), 1); _os.dup2(err.fileno(), 2)
        status = 0
        try:
            code = compile(open(req["block"], encoding="utf-8").read(), req["block"], "exec")
            exec(code, main.__dict__)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            _tb.print_exc()
            status = 1
        finally:
            _sys.stdout.flush(); _sys.stderr.flush()
            _os.dup2(saved[0], 1); _os.dup2(saved[1], 2)
            _os.close(saved[0]); _os.close(saved[1])
            out.close(); err.close()
        answer.write(f"{status}\n"); answer.flush()

if __name__ == "__main__":
    _serve()
"""


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class _Interpreter:
    """One Python process that runs the Python blocks of one document, in order, in one namespace."""

    def __init__(self, work: Path, env: dict[str, str]):
        self.work = work
        driver = work.parent / "_docs_driver.py"
        driver.write_text(DRIVER)
        self.script = work / "_docs_script.py"  # the blocks so far, as one script
        self.proc = subprocess.Popen([sys.executable, str(driver)], cwd=work, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, k: int, code: str) -> tuple[int, str, str]:
        block = self.work.parent / f"_docs_block_{k}.py"
        block.write_text(code)
        out, err = self.work.parent / f"_docs_block_{k}.out", self.work.parent / f"_docs_block_{k}.err"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"block": str(block), "script": str(self.script),
                                          "out": str(out), "err": str(err)}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        answer = self.proc.stdout.readline() if ready else ""
        if not answer:
            self.close()
            status = -1 if ready else 124  # the interpreter died, or the block ran past TIMEOUT
        else:
            status = int(answer)
        return status, _read(out), _read(err)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _run_document(doc: Path, tmp_path: Path) -> int:
    work = tmp_path / "work"
    work.mkdir(parents=True)
    _shims(tmp_path / "bin")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200",
           "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    ran = 0
    python: _Interpreter | None = None
    try:
        for k, block in enumerate(blocks(doc)):
            if block.marker("file"):
                (work / block.marker("file")[0]).write_text(prepared(block))
                continue
            if block.lang not in RUNNABLE or block.marker("skip"):
                continue
            code = prepared(block)
            if RUNNABLE[block.lang] == "python":
                python = python or _Interpreter(work, env)
                status, stdout, stderr = python.run(k, code)
            else:
                proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=work, env=env,
                                      capture_output=True, text=True, timeout=TIMEOUT)
                status, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
            assert status == 0, (
                f"{block.doc}:{block.line}: the {block.lang} example failed (exit {status})\n"
                f"--- code ---\n{code}--- stdout ---\n{stdout[-3000:]}--- stderr ---\n"
                f"{stderr[-3000:]}")
            ran += 1
    finally:
        if python is not None:
            python.close()
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


def test_python_blocks_of_a_document_share_one_fresh_interpreter(tmp_path):
    # names of earlier blocks are there (a reader pastes the blocks in order) ...
    doc = tmp_path / "x.md"
    doc.write_text("```python\nx = 41\nimport json\n```\n\n```bash\necho hi > f.txt\n```\n\n"
                   "```python\nassert x + 1 == 42 and json.dumps([1]) == '[1]'\n"
                   "assert open('f.txt').read() == 'hi\\n' and __name__ == '__main__'\nprint('ok')\n```\n")
    assert _run_document(doc, tmp_path / "a") == 3
    # ... and nothing else: not the checker's own names, not a previous document's
    other = tmp_path / "y.md"
    other.write_text("```python\nprint(sorted(n for n in globals() if not n.startswith('__')))\n"
                     "assert not {'x', 'json', '_json', '_serve'} & set(globals())\n```\n")
    assert _run_document(other, tmp_path / "b") == 1
    # a block that needs a name no earlier block defines fails, naming the line
    bad = tmp_path / "z.md"
    bad.write_text("text\n\n```python\nprint(W0)\n```\n")
    with pytest.raises(AssertionError, match=r"(?s)z.md:3: the python example failed .*NameError: name 'W0'"):
        _run_document(bad, tmp_path / "c")
    # a prelude is not a marker any more: the names a block uses are in the file
    pre = tmp_path / "p.md"
    pre.write_text("<!-- docs-check: prelude W0 = 1 -->\n```python\nprint(W0)\n```\n")
    with pytest.raises(ValueError, match="unknown docs-check marker 'prelude'"):
        blocks(pre)
