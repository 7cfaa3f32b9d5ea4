"""Inventory of the numbers in README.md and docs/**/*.md, and which of them the numbers check covers.

``python -m tests.doc_inventory`` lists every number of the prose, the tables, the comments of code
blocks (``# rel. error 0.931``) and the blocks of printed output (no language), leaving out what
is not a result: a code block's own code (its literal arguments) and other languages (YAML
specs), inline code spans (`` `d = 50` ``, option values), links, HTML comments (docs-check
markers), headings (section numbers), dates and clock times, years and citations, references to
issues and sections (``issue 21``, ``§11``, ``steps 9–11``). Each remaining number is put in one class:

``covered``
    inside a group of a :data:`tests.doc_numbers.NUMBERS` sentence: a check regenerates it;
``measured``
    a machine-dependent measurement (a time, a rate, a memory size, a load average, a speed-up)
    in a sentence or table that names the date, machine and command it was measured on
    (``measured`` within :data:`DATED_WINDOW` characters): not regenerated, labelled;
``input``
    a setting or a definition, not a result (``10 seeds``, ``3000 steps``, ``order 3``,
    ``5 %``-criteria ...; see :data:`INPUT_CONTEXT`), by the words around it;
``other``
    everything else: a number a command produces that no check regenerates, or one the rules
    above do not recognise (the list to work through).

The classification is a heuristic over the text (the rules are below, one regular expression
each); ``--show other`` lists the numbers of a class with their line, to be checked by eye.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: A number as the text prints it: 0.707, 1.5e-8, 1e−5, 10 000, 40/40, 2.6·10⁶ (the mantissa).
NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:[  ]\d{3}(?!\d))*(?:\.\d+)?(?:e[-−+]?\d+)?(?:/\d+)?(?![\w])")
#: Spans that hold no result: inline code, links' targets, URLs, HTML comments, dates, clock times,
#: years with a venue or in a citation, issue / section / step references, version numbers.
SKIP = [
    r"`[^`\n]*`", r"\]\([^)]*\)", r"https?://\S+", r"<!--.*?-->", r"arXiv:\s*[\d.]+",
    r"\b20\d\d-\d\d-\d\d\b", r"\b\d\d:\d\d(?:[–-]\d\d:\d\d)?\b", r"\bUTC\b",
    r"(?:NeurIPS|ICML|ICLR|CVPR|COLT|JMLR|AISTATS|arXiv|et al\.|Kakade|Hsu|Sanghavi|Shah|Mayo|Pereira"
    r"|Belkin|Telgarsky)[ ,]*\(?\s*(?:19|20)\d\d\)?",
    r"\((?:19|20)\d\d\)", r"\b(?:issues?|§|section|steps?|PR|commit|[Ii]tem)\s*\d+(?:[–-]\d+)?",
    r"§\s*\d+(?:\.\d+)?", r"\b(?:Python|PyTorch|torch|[Pp]y)\s*[\d.]+(?:\+\w+)?", r"\bv?\d+\.\d+\.\d+\S*",
    r"\b[a-f0-9]{7,40}\b", r"\bfloat(?:16|32|64)\b|\bbfloat16\b|\bfp32\b|\bTF32\b|\bx86-64\b|\bL-BFGS\b",
    r"\b[A-Z]+\d+\b", r"\b\w+_\d\w*\b", r"\b(?:Ω|O)\([^)]*\)", r"\^\{[^}]*\}|[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+",
]
SKIP_RE = re.compile("|".join(SKIP), flags=re.S)
#: Words around a number that make it a setting or a definition (within the same line).
INPUT_CONTEXT = re.compile(
    r"^\s*(?:seeds?|runs?\b(?! in)|cores?|draws?|epochs?|steps\b(?! in| to)|samples|neurons|components|"
    r"points|CPUs?|threads?|workers?|repeats|timings|folds|words|documents|terms|coordinates|"
    r"per (?:row|cell|d)|rows|columns|classes|configurations|targets|widths|grid points|dimensions|"
    r"presets|experiments|claims|figures|blocks|commands|keywords|times longer|runs per|"
    r"-neuron|-sample|-step|-dimensional|-seed)"
    r"|^\s*(?:%|per cent)\s+(?:of the null|criterion|of seeds|of a component)"
    r"|(?:\border|\brank|\bdegree|\bwidth|\bdimension|\bbatch|\bseeds?|\bk|\bn|\bd|\bm|\bN|\bp|\bs|\bl|"
    r"\bσ|\bα|\bβ|\bc|\bε|\bμ|\bλ|\bB|\bα₀|\bk =|\bn =|\bd =|\bm =|\bN =|\bweights?|\bstep|\bratio|"
    r"\bbudget|\bbound|\bthreshold|\bhalf of|\bevery|\bthe first|\btop|\blast|\bover|\bwithin|\bbelow|"
    r"\babove|\bup to|\bat most|\bat least|\bfactor|\bscale|\bsteps?:?)\s*(?:[=≤≥<>:]\s*)?$")
#: A measured time, rate, size or load: a unit right after the number, or "load average" before it.
MEASURE_UNIT = re.compile(r"^\s*(?:ms|µs|s\b|s/|s per|s of|min\b|minutes|h\b|hours|GB|GiB|MB|MiB|KB|kB|"
                          r"GFLOP|MFLOP|×|x\b|k\b|k run|run-steps|steps/s|fits/s|% of the fp32|seconds)")
MEASURE_BEFORE = re.compile(r"(?:load(?: average)?|load ≈|RSS|rate|speed-?up|faster|slower)\s*[~≈]?\s*$",
                            flags=re.I)
#: A measured figure is labelled when the date it was measured on is this close to it.
DATED_WINDOW = 1500
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


@dataclass(frozen=True)
class Number:
    doc: str
    line: int
    pos: int  # offset in the document
    text: str
    cls: str
    context: str


#: Table columns of settings, and of measured times / rates / sizes (by their header cell).
INPUT_HEADER = re.compile(r"^\s*(?:`?(?:N|d|m|B|k|n|p|s|l|r|m=d|dim|order|width|rank|steps|seeds?|dtype|"
                          r"device|d\^l|N, d|d, r|order, d|OMP_NUM_THREADS)`?|configuration|size|what|"
                          r"comparison|cell|setting|order|dim|width)\s*$", flags=re.I)
MEASURE_HEADER = re.compile(r"\bms\b|\bs\b|seconds|time|/s\b|speed|RSS|MiB|GiB|MB|memory|rate|×|"
                            r"ratio|faster|GFLOP|wall|CPU", flags=re.I)


def _column_header(text: str, masked: str, line_start: int, pos: int) -> str | None:
    """The header cell of the table column at ``pos``; ``""`` for the header row or the first
    column (labels); ``None`` outside tables."""
    if not text.startswith("|", line_start):
        return None
    column = masked[line_start:pos].count("|") - 1
    if column <= 0:
        return ""
    start = line_start
    while start > 0:
        prev = text.rfind("\n", 0, start - 1) + 1
        if not text.startswith("|", prev):
            break
        start = prev
    if start == line_start:
        return ""
    end = text.find("\n", start)
    cells = text[start:end].strip().strip("|").split("|")
    return cells[column] if column < len(cells) else ""


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks, less their comments (``# ...`` after code is kept as prose)."""
    spans = []
    for m in re.finditer(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        start = m.start()
        lang = text[m.start() + 3:text.index("\n", m.start())].strip()
        pos = start
        for line in text[start:m.end()].splitlines(keepends=True):
            hash_at = line.find("# ") if lang in ("python", "bash", "sh") else -1
            if lang == "" and not line.startswith("```"):
                pass  # a block without a language is printed output: its numbers are results
            elif hash_at >= 0 and not line.lstrip().startswith("#!"):
                spans.append((pos, pos + hash_at))  # the comment (often the printed result) stays
            else:
                spans.append((pos, pos + len(line)))
            pos += len(line)
    return spans


def _masked(text: str) -> str:
    """The text with every span that holds no result replaced by spaces (offsets kept)."""
    chars = list(text)
    for a, b in _code_spans(text):
        chars[a:b] = " " * (b - a)
    blocks = [m.span() for m in re.finditer(r"^```[^\n]*\n.*?^```", text, flags=re.S | re.M)]
    for m in re.finditer(r"^#+ .*$", text, flags=re.M):  # headings (not a comment inside a code block)
        if not any(a <= m.start() < b for a, b in blocks):
            chars[m.start():m.end()] = " " * (m.end() - m.start())
    masked = "".join(chars)
    for m in SKIP_RE.finditer(masked):
        masked = masked[:m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
    return masked


def covered_spans() -> dict[str, list[tuple[int, int]]]:
    """Spans of the document text that :data:`tests.doc_numbers.NUMBERS` checks."""
    from tests.doc_numbers import NUMBERS

    spans: dict[str, list[tuple[int, int]]] = {}
    for number in NUMBERS:
        text = (ROOT / number.doc).read_text(encoding="utf-8")
        m = re.search(number.text, text, flags=re.S)
        if m is None:
            continue
        spans.setdefault(number.doc, []).extend(m.span(i) for i in range(1, (m.lastindex or 0) + 1)
                                                if m.span(i) != (-1, -1))
    return spans


def inventory() -> list[Number]:
    covered = covered_spans()
    out = []
    for path in DOCS:
        doc = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        masked = _masked(text)
        dates = [m.start() for m in DATE.finditer(text)]
        for m in NUMBER.finditer(masked):
            a, b = m.span()
            line_start = text.rfind("\n", 0, a) + 1
            line_end = text.find("\n", b)
            line_end = len(text) if line_end < 0 else line_end
            before, after = text[line_start:a], text[b:line_end]
            header = _column_header(text, masked, line_start, a)
            if any(s < b and a < e for s, e in covered.get(doc, [])):
                cls = "covered"
            elif header is not None and (header == "" or INPUT_HEADER.search(header)):
                cls = "input"  # a row label, a header cell or a column of settings
            elif (MEASURE_UNIT.match(after) or MEASURE_BEFORE.search(before)
                  or (header is not None and MEASURE_HEADER.search(header))):
                cls = "measured" if any(abs(p - a) <= DATED_WINDOW for p in dates) else "other"
            elif INPUT_CONTEXT.search(before) or INPUT_CONTEXT.match(after):
                cls = "input"
            else:
                cls = "other"
            out.append(Number(doc, text.count("\n", 0, a) + 1, a, m.group(), cls,
                              text[max(line_start, a - 50):min(line_end, b + 30)]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    numbers = inventory()
    show = argv[argv.index("--show") + 1] if "--show" in argv else None
    if show:
        for n in numbers:
            if n.cls == show:
                print(f"{n.doc}:{n.line}: {n.text:>10}   {n.context}")
    per_doc: dict[str, Counter] = {}
    for n in numbers:
        per_doc.setdefault(n.doc, Counter())[n.cls] += 1
    classes = ("covered", "measured", "input", "other")
    print(f"{'document':28} " + " ".join(f"{c:>9}" for c in classes) + "     total")
    total = Counter()
    for doc, c in per_doc.items():
        total.update(c)
        print(f"{doc:28} " + " ".join(f"{c[k]:9d}" for k in classes) + f" {sum(c.values()):9d}")
    print(f"{'all':28} " + " ".join(f"{total[k]:9d}" for k in classes) + f" {sum(total.values()):9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
