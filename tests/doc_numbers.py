"""Numbers in README.md and docs/*.md that a command produces, with the command and a tolerance.

Each :class:`DocNumber` names a document, a regular expression that finds the number(s) in its
text (one group per number, exactly as printed there), a command from :data:`COMMANDS` and a
regular expression that finds the same number(s) in the command's output. The check
(``tests/test_doc_numbers.py``; ``python -m tests.doc_numbers [--long]`` prints the table) runs
the command in a fresh folder, as the reader would paste it (``overtensor`` and ``python`` meaning
this checkout, one thread), and fails when a number of the text is more than its tolerance away
from the fresh one, or when the text no longer holds the sentence (then this table is updated
with the text).

Tolerances say what the number means: ``abs`` for numbers at a precision floor (a relative error
of ``0.0`` and one of ``1.5e-8`` are the same fit) or bounded by a stopping rule, ``rel`` for
measured values (a few per cent: the same seed on another BLAS may round differently).
Commands that take more than about a minute are ``long``: they run only with ``--long``
(``OVERTENSOR_LONG_DOC_NUMBERS=1`` for the test; ``--only CMD1,CMD2`` runs the named commands),
and the text says when and on which machine they were measured (``measured``, checked to be in the
text next to the number).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Command:
    """A shell script run with ``bash -e`` in a fresh folder; ``long``: more than about a minute."""

    script: str
    long: bool = False


@dataclass(frozen=True)
class DocNumber:
    """Number(s) of a document and where a command prints them.

    Attributes
    ----------
    doc : str
        File relative to the repository root.
    text : str
        Regex over the document; each group is one number as the text prints it.
    command : str
        Key of :data:`COMMANDS`.
    output : str
        Regex over the command's stdout, with as many groups as ``text``.
    tol : float
        Largest allowed difference: absolute, or relative when ``rel``.
    rel : bool
        ``tol`` is relative to the fresh value.
    measured : str
        For a long command: the date the text names, within 400 characters of the number or in
        its section (between the headings around it).
    order : tuple of int
        The output's numbers in the text's order (indices into the output's groups), when they differ.
    scale : float
        The text's unit in the output's (``100``: the text says per cent).
    text_order : tuple of int
        The text's numbers this entry compares (indices into the text's groups; default all).
    floor : float
        A precision floor: a text number and a fresh one both at most ``floor`` in size state the
        same thing (rounding), whatever the tolerance.
    """

    doc: str
    text: str
    command: str
    output: str
    tol: float
    rel: bool = False
    measured: str = ""
    order: tuple[int, ...] = ()
    scale: float = 1.0
    text_order: tuple[int, ...] = ()
    floor: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.command}:{self.text[:40]}"


_PY = 'python - <<"PY"\n{}\nPY\n'

COMMANDS: dict[str, Command] = {
    "quickstart": Command(_PY.format('''
import overtensor as ot

target = ot.random_target(order=3, dim=100, rank=10, components="random", random_state=0)
result = ot.fit(target, width=50, random_state=0)
print("relative_error", result.relative_error)
print("recovered", ot.recovery(result.cp, target).recovered)
paper = ot.fit(target, width=50, method="beyond-lazy", random_state=0,
               runtime=ot.Runtime(engine="paper"))
print("paper", paper.relative_error, paper.steps)
''')),
    "grouped-options": Command(_PY.format('''
import overtensor as ot

target = ot.random_target(order=3, dim=20, rank=3, random_state=0)
result = ot.fit(target, 12, tol=1e-6, random_state=0,
                schedule=ot.GradientSchedule(lr=0.05, max_steps=5000),
                extraction=ot.Extraction(rank=3), runtime=ot.Runtime(engine="paper"))
print("rank", result.cp.rank, "met", int(result.relative_error <= 1e-6))
''')),
    "fit-json": Command("overtensor fit --order 3 --dim 100 --rank 10 --width 50 --components random "
                        "--seed 0 --json\n"),
    "fit-lazy-50": Command("overtensor fit --order 3 --dim 50 --rank 5 --width 50 --regime lazy --json\n"),
    "fit-full-50": Command("overtensor fit --order 3 --dim 50 --rank 5 --width 50 --engine paper "
                           "--json\n"),
    "fit-full-50-laziness": Command("overtensor fit --order 3 --dim 50 --rank 5 --width 50 --engine paper "
                                    "--laziness --json\n"),
    "fit-alpha-50": Command("overtensor fit --order 3 --dim 50 --rank 5 --width 50 --regime alpha-scaled "
                            "--alpha 100 --json\n"),
    "lazy-threshold": Command(_PY.format('''
import torch, overtensor as ot
for d, widths in ((8, [4, 8, 12, 14, 15, 16]), (12, [6, 12, 24, 30, 31, 32])):
    target = ot.random_target(order=3, dim=d, rank=1, random_state=0)
    W0 = torch.randn(max(widths), d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    print(d, {m: round(ot.lazy_error(target, W0[:m]), 4) for m in widths})
''')),
    # the benchmark as the reader runs it from the checkout; its CSV goes to the scratch folder
    "networks-d60-exact": Command('python "$CHECKOUT/benchmarks/bench_networks_d60.py" --train ""\n'),
    "networks-d60-adam": Command('python "$CHECKOUT/benchmarks/bench_networks_d60.py" --optimizer adam '
                                 '--lr 0.05 --steps 3000\n', long=True),
    "networks-d60-sgd": Command('python "$CHECKOUT/benchmarks/bench_networks_d60.py" --steps 3000 '
                                '--tag sgd_curvature\n', long=True),
    "bench-memory": Command('python "$CHECKOUT/benchmarks/bench_memory.py"\n'),
    "fit-lazy-8": Command("overtensor fit --regime lazy --order 3 --dim 8 --rank 1 --width 15 --json\n"
                          "overtensor fit --regime lazy --order 3 --dim 8 --rank 1 --width 15 --tol 0 "
                          "--json\n"),
    "min-norm-small": Command("overtensor experiment run min-norm-generalization --preset small --inprocess "
                              "--no-progress\n", long=True),
    "trusted-answers": Command('python "$CHECKOUT/benchmarks/bench_trusted_answers.py"\n', long=True),
    "networks-small": Command("overtensor experiment run lazy-vs-full-networks --preset small --inprocess "
                              "--no-progress\n", long=True),
    "networks-orders": Command(
        "overtensor experiment run lazy-vs-full-networks --preset orders --inprocess --no-progress\n"),
    "min-norm-heldout": Command(
        "overtensor experiment run min-norm-generalization --preset heldout --inprocess --no-progress\n",
        long=True),
    "width-vs-dimension-small": Command(
        "overtensor experiment run width-vs-dimension --preset small --inprocess --no-progress\n",
        long=True),
    "deflation-staircase": Command(_PY.format('''
import overtensor as ot
from overtensor.tensors.component_mass import MassRecorder, crossing_steps, fit_order, time_ratios

target = ot.random_target(order=4, dim=20, rank=5, components="orthonormal", weights=0.5,
                          random_state=0)
result = ot.fit(target, width=50, method="deflation", tol=1e-6, random_state=0,
                recorders=[MassRecorder(target)],
                schedule=ot.GradientSchedule(lr=0.05, eval_every=5, max_steps=4000,
                                             final_steps=1000))
t50 = crossing_steps(result.history, 0.5)
print("t50", *[int(t) for t in t50])
print("ratios", *[f"{r:.2f}" for r in time_ratios(t50)])
''')),
    # the text's command uses two local workers; the numbers do not depend on the scheduler
    "deflation-orth4": Command("overtensor experiment run deflation --preset orth4 --inprocess "
                               "--no-progress\n"),
    "moments-hsu-kakade": Command('python "$CHECKOUT/benchmarks/bench_moments.py" --hsu-kakade\n'),
    "moments-real": Command('python "$CHECKOUT/benchmarks/bench_moments.py" --real\n'),
    "readme-mixture": Command(_PY.format('''
import torch
from overtensor.moments import GaussianMixture, SphericalMixtureStream

means = 2 * torch.eye(4, 20, dtype=torch.float64)
X = torch.cat(list(SphericalMixtureStream(means, torch.full((4,), 0.25), 0.5, 20_000).chunks()))
gm = GaussianMixture(4, random_state=0).fit(X)
print(gm.weights_.round(3), gm.covariances_.round(2))
''')),
    "moments-real-experiment": Command("overtensor experiment run method-of-moments --preset real "
                                       "--inprocess --no-progress\n"),
    "opt-energy-small": Command("overtensor experiment run opt-energy --preset small --inprocess "
                                "--no-progress\n"),
    "opt-expressivity-small": Command("overtensor experiment run opt-expressivity --preset small "
                                      "--inprocess --no-progress\n"),
    "adaptive-regression-small": Command("overtensor experiment run adaptive-regression --preset small "
                                         "--inprocess --no-progress\n"),
    "adaptive-networks-small": Command("overtensor experiment run adaptive-networks --preset small "
                                       "--inprocess --no-progress\n"),
    "lazy-init-scale": Command(_PY.format('''
import overtensor as ot

target = ot.random_target(order=3, dim=10, rank=3, random_state=0)
for init_scale in (1.0, 3.0, 10.0):
    res = ot.fit(target, width=40, regime="lazy", random_state=0,
                 schedule=ot.GradientSchedule(init_scale=init_scale, max_steps=3000))
    full = res.full_model_cp()
    gap = ot.cp_relative_error(full, ot.as_target(res.cp))
    print(f"init_scale={init_scale:4.1f} scale={res.scale:.4f} laziness={res.history[-1]['laziness']:.3f} "
          f"linearized error={res.relative_error:.1e} full-model error="
          f"{ot.cp_relative_error(full, target):.2e} gap={gap:.2e}")
''')),
    "power-variants": Command(_PY.format('''
import torch, overtensor as ot
from overtensor.tensors.power import PowerOptions

for seed in range(3):
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    target = ot.CPTarget(torch.tensor([-0.5, -0.5, 0.5, 0.5], dtype=torch.float64),
                         Q.T.contiguous(), 2)
    for variant, shift in (("plain", "adaptive"), ("shifted", "adaptive"),
                           ("shifted", "conservative")):
        r = ot.fit(target, method="power-method", random_state=seed, tol=0.0,
                   power=PowerOptions(variant=variant, shift=shift))
        print(seed, variant, shift, r.relative_error, sorted(r.cp.weights.tolist()))
''')),
}

_F = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"  # a number as Python or the text prints it
#: Relative errors of an exact fit sit at the float64 floor of the Gram identity, ~1.5e-8
#: (overtensor.precision.GRAM_FLOOR): 0.0 and 3e-8 are the same statement.
FLOOR = 3e-8
#: ... with the trained columns: NN trained, gap, seconds, step of W, then the same for NT.
_D60_TRAINED = r"\|\s+{} \| (?:[^|\n]*\|){{5}}" + rf" +{_F} +\|" * 8 + r"[^\n]*\n.*?"
_D60_ALL = "".join(_D60_TRAINED.format(n) for n in (6, 15, 30, 45, 60, 120))
#: "mean ± sd" as a table cell (bold or not), and a row of min-norm-generalization's summary table
_PM = rf"\**{_F} ± {_F}\**"
_MN_ROW = r"^ *{} +{} +5" + rf" +{_F} ± {_F}" * 5 + r" +(\d)/5" * 4
#: A row of the deflation experiment's summary: ordered, all recovered, unfitted %, five t50, four ratios
_ORTH4_ROW = (r"orth4-geo +{} {} +10 +(\d+)/10 +(\d+)/10 +(\d+)% +(\d+) (\d+) (\d+) (\d+) (\d+) +\| +"
              + r" ".join([rf"{_F}\(2\.00\)"] * 4))
_ORTH4_BOTH = _ORTH4_ROW.format(20, "deflation") + ".*?" + _ORTH4_ROW.format(50, "deflation")
#: bench_moments.py --real: the four methods of one dataset and feature scaling (acc ± sd, ARI ± sd)
_REAL_BLOCK = ".*?".join([r"\|\s+{0} \|\s+{1} \|[^|]*\|\s+5 \| " + rf"{_F} ± {_F} \| {_F} ± {_F} \|"] * 4)
#: method-of-moments' summary: one method's line in each dataset's group (acc ± sd, loglik), iris,
#: wine, digits in the README's order (the summary lists them alphabetically)
_MOM_LINE = r"(?:^{0} +|^{0} .*?^ +){1} +" + rf"{_F} ± {_F} +{_F} ± \S+"


def _mom_rows(method: str) -> str:
    return r"\A" + "".join(f"(?=.*?{_MOM_LINE.format(ds, method)})" for ds in ("iris", "wine", "digits"))


#: bench_memory.py's row: relative error, recovered, steps
_MEMORY_ROW = rf"\|\s+3 \| 1000 \|\s+20 \|\s+100 \|\s+{_F} \|\s+(\d+) \|\s+(\d+) \|"
#: One width's row of bench_networks_d60.py's table: N, then RF, NT, NN (risk / null risk).
_D60_ROW = r"\|\s+{} \| " + rf"{_F} +\| +{_F} +\| +{_F} +\|.*?"

def _small_block(target: str, cols: int) -> str:
    """The six rows (N = 4 ... 60) of one target's block of lazy-vs-full-networks' summary table."""
    return (rf"\[{target}\]\n[^\n]*\n" +
            "".join(rf" *{n}" + rf" +{_F}" * cols + r" *\n" for n in (4, 10, 20, 30, 40, 60)))


NUMBERS: list[DocNumber] = [
    # README: quick start, Python and command line
    DocNumber("README.md", r"result\.relative_error +# " + _F + ":", "quickstart",
              r"relative_error " + _F, FLOOR),
    DocNumber("README.md", r"# Hungarian matching: recovered=(\d+) of rank=10", "quickstart",
              r"recovered (\d+)", 0),
    DocNumber("README.md", r"paper\.relative_error, paper\.steps +# \(" + _F + ",", "quickstart",
              r"paper " + _F, FLOOR),
    DocNumber("README.md", r"paper\.steps +# \([^,]*, (\d+)\)", "quickstart", r"paper \S+ (\d+)", 0.05,
              rel=True),
    # README: fit's grouped options (the rank the capped fit returns; True = 1: it met tol)
    DocNumber("README.md", r"result\.cp\.rank, result\.relative_error <= 1e-6 +# \((\d+), True\)",
              "grouped-options", r"rank (\d+) met 1", 0),
    DocNumber("README.md", r'"relative_error": ' + _F + r', "steps"', "fit-json",
              r'"relative_error": ' + _F, FLOOR),
    # The quick start's fit is the same call (seed 0 for the target and the fit).
    DocNumber("README.md", r"result\.relative_error +# " + _F + ":", "fit-json",
              r'"relative_error": ' + _F, FLOOR),
    DocNumber("README.md", r'"steps": (\d+), "seconds"', "fit-json", r'"steps": (\d+)', 0.05, rel=True),
    DocNumber("README.md", r'"rank": (\d+), "recovered": (\d+)', "fit-json",
              r'"rank": (\d+), "recovered": (\d+)', 0),
    # README: the lazy and the full fit at d = 50
    DocNumber("README.md", r"--regime lazy --json +# rel\. error " + _F + r", (\d)/5 recovered, "
              r"kernel_change (\d+)", "fit-lazy-50",
              r'"relative_error": ' + _F + r'.*"recovered": (\d+).*"kernel_change": ' + _F, 0.005),
    DocNumber("README.md", r"--engine paper --json +# rel\. error ~(0),", "fit-full-50",
              r'"relative_error": ' + _F, FLOOR),
    DocNumber("README.md", r"--engine paper --json +# rel\. error ~0, (\d)/5 recovered, laziness ≈ " + _F,
              "fit-full-50", r'"recovered": (\d+).*"laziness": ' + _F, 0.01, rel=True),
    # README: the small preset of width-vs-dimension (long): lazy and beyond-lazy slopes
    DocNumber("README.md", r"The small preset .*? gives lazy " + _F + " and beyond-lazy " + _F,
              "width-vs-dimension-small", r"lazy " + _F + r" \(d = [^)]*\), beyond-lazy " + _F, 0.02,
              measured="2026-12-06"),
    DocNumber("docs/lazy.md", rf"gives slopes\s+{_F} \(beyond-lazy\) and {_F} \(lazy\)",
              "width-vs-dimension-small",
              r"lazy " + _F + r" \(d = [^)]*\), beyond-lazy " + _F, 0.02, measured="2026-12-06",
              order=(1, 0)),
    # docs/networks.md and README: the order of RF, NT and NN at N = 10, d = 40 (median of 10 seeds)
    *[DocNumber("docs/networks.md", rf"\| {row} \| {_F} \| {_F} \| {_F} \|", "networks-orders",
                rf"\[{target}\]\n[^\n]*\n[^\n]*\n +10 +{_F} +{_F} +{_F}", 0.01)
      for row, target in (("authors' `B`", "authors"), ("rank-5 `B`", "rank"), ("flat-spectrum `B`", "flat"),
                          ("mixture, full-rank `Δ`", "mixture"), ("mixture, rank-5 `Δ`", "mixture-lowrank"))],
    # ... and the claims of the orders preset (exact optima: counts exact, numbers to their digits)
    DocNumber("docs/networks.md", r"RF > NT at all (\d+) points with `N < d`", "networks-orders",
              r"For N < d random features.*? at (\d+) points with N < d", 0),
    DocNumber("docs/networks.md",
              r"mixture: NN < NT at (\d+)/40 points each\).*?predicts the order at (\d+)/200",
              "networks-orders", r"authors: NN < NT at (\d+)/40.*?predicts the order at (\d+)/200", 0),
    DocNumber("docs/networks.md",
              rf"\(authors' target; (\d+) points, max {_F}·R0\), RF does not \(≥ {_F}·R0\)",
              "networks-orders", rf"NT/NN risk over (\d+) points with N ≥ d: {_F}·R0 .*?min RF: {_F}·R0",
              1e-3),
    DocNumber("docs/networks.md", rf"NT keeps at least {_F} of `\(1 − N/d\)²·R_0` \(≥ {_F}·R0\)",
              "networks-orders", rf"exact NN ≤ \S+·R0 and NT ≥ {_F}·R0, at least {_F}·", 6e-3, order=(1, 0)),
    DocNumber("docs/networks.md",
              rf"\({_F} against {_F} of the null risk at `N = 10`, the `orders` preset below\)\.\s+With a "
              rf"rank-5 covariance difference the order flips \(NN exact {_F} from `N = 5`, NT {_F}\)",
              "networks-orders", r"\[mixture\]\n[^\n]*\n[^\n]*\n +10 +\S+ +" + _F + " +" + _F +
              r".*?\[mixture-lowrank\]\n[^\n]*\n[^\n]*\n +10 +\S+ +" + _F + " +" + _F, 6e-3,
              order=(1, 0, 3, 2)),
    DocNumber("README.md", r"equal `\|λ_j\|`: NT " + _F + " against NN " + _F, "networks-orders",
              r"\[flat\]\n[^\n]*\n[^\n]*\n +10 +\S+ +" + _F + " +" + _F, 0.01),
    # README and docs/lazy.md: the exact lazy error of single rank-one order-3 targets (the script of
    # docs/lazy.md rounds to 4 digits: a 0.0 there is below 5e-5, the text's zeros are checked as such)
    *[DocNumber("docs/lazy.md", rf"d={d}: +" + ", +".join(rf"m={m}: {_F}" for m in ms), "lazy-threshold",
                rf"^{d} \{{" + ", ".join(rf"{m}: {_F}" for m in ms), 6e-4)
      for d, ms in ((8, (4, 8, 12, 14, 15, 16)), (12, (6, 12, 24, 30, 31, 32)))],
    DocNumber("README.md", rf"`d = 8`: {_F} at `m = 4`, {_F} at `m = 8`, {_F} from\s+`m = 15`; `d = 12`: "
              rf"{_F} at `m = 12`, {_F} from `m = 31`", "lazy-threshold",
              rf"^8 \{{4: {_F}, 8: {_F}, .*15: {_F}, .*\n12 .*12: {_F}, .*31: {_F}", 6e-3),
    # docs/lazy.md: the fits of the README's d = 50 commands, with their diagnostics
    DocNumber("docs/lazy.md", rf"--regime lazy --json` gives a relative\s+error of {_F}, equal to the "
              rf"exact lazy optimum {_F}; `laziness` is {_F} and `kernel_change`\s+is {_F}\.", "fit-lazy-50",
              rf'"relative_error": {_F}.*"laziness": {_F}.*"lazy_optimum_error": {_F}.*"kernel_change": {_F}',
              0.005, order=(0, 2, 1, 3)),
    DocNumber("docs/lazy.md", rf"gives {_F} after extraction", "fit-full-50-laziness",
              rf'"relative_error": {_F}', FLOOR),
    # the model before extraction stopped at tol = 1e-4: any value below it is the same statement
    DocNumber("docs/lazy.md", rf"the model itself {_F},", "fit-full-50-laziness",
              rf'"model_relative_error": {_F}', 1e-4),
    DocNumber("docs/lazy.md",
              rf"recovers (\d)/5 components; `laziness` is {_F} and `kernel_change` is {_F}\.",
              "fit-full-50-laziness", rf'"recovered": (\d+).*"laziness": {_F}.*"kernel_change": {_F}', 0.05,
              rel=True),
    DocNumber("docs/lazy.md", rf"--alpha 100` the error is {_F} and `kernel_change` {_F}\.", "fit-alpha-50",
              rf'"relative_error": {_F}.*"kernel_change": {_F}', 0.005),
    # docs/networks.md and README: the exact optima at d = 60 (authors' target, one draw)
    *[DocNumber("docs/networks.md", rf"\| {row} \| " + r" \| ".join([_F] * 6) + r" \|", "networks-d60-exact",
                "".join(_D60_ROW.format(n) for n in (6, 15, 30, 45, 60, 120)), 6e-4,
                order=tuple(range(col, 18, 3)))
      for col, row in enumerate(("RF", "NT", r"NN \(= eigenvalue tail\)"))],
    DocNumber("README.md",
              rf"is RF {_F}, {_F},\s+{_F}, {_F} > NT {_F}, {_F}, {_F}, {_F} > NN {_F}, {_F}, {_F}, {_F}",
              "networks-d60-exact", "".join(_D60_ROW.format(n) for n in (6, 15, 30, 45)), 6e-3,
              order=(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11)),
    # docs/performance.md: what the benchmarks print that is not a time (the times are measured figures,
    # dated in the text): the large fit's error, recovery and steps; the lazy fit of issue 16
    DocNumber("docs/performance.md", rf"converges \(error {_F}: below the float64 floor", "bench-memory",
              _MEMORY_ROW, FLOOR, order=(0,)),
    DocNumber("docs/performance.md", r"floor; all (\d+) recovered\) in (\d+) steps", "bench-memory",
              _MEMORY_ROW, 0.05, rel=True, order=(1, 2)),
    DocNumber("docs/performance.md", _MEMORY_ROW.split(r" \|\s+(\d+)")[0], "bench-memory", _MEMORY_ROW, FLOOR,
              order=(0,)),
    DocNumber("docs/performance.md", _MEMORY_ROW.replace(_F, r"\S+"), "bench-memory", _MEMORY_ROW, 0.05,
              rel=True, order=(1, 2)),
    DocNumber("docs/performance.md", rf"\| now, default \(`tol = 1e-4`; CG\) \| (\d+) \| tol \| {_F} \|",
              "fit-lazy-8", rf'"relative_error": {_F}.*?"steps": (\d+), .*?"stop_reason": "tol"', 1e-4,
              order=(1, 0)),
    DocNumber("docs/performance.md",
              r"\| now, `--tol 0` \(CG to the optimum\) \| (\d[\d ]*) \| stagnation \|",
              "fit-lazy-8", r'"steps": (\d+), [^\n]*"stop_reason": "stagnation"', 0.05, rel=True),
    DocNumber("docs/performance.md",
              rf"\| now, `--tol 0` \(CG to the optimum\) \| [\d ]+ \| stagnation \| {_F} \|",
              "fit-lazy-8", rf'"relative_error": {_F}[^\n]*"stop_reason": "stagnation"', 1e-9),
    # docs/networks.md: online training at d = 60 from the exact table's W_0 (long; measured 2026-12-06):
    # risks / R0 to 0.002 (the criterion is 0.05), the curvature steps to 3 %
    *[DocNumber("docs/networks.md", rf"{intro}.*?\| {row} \| " + r" \| ".join([_F] * 6) + r" \|", command,
                _D60_ALL, 0.002, measured="2026-12-06",
                order=tuple(range(col, 48, 8)))
      for intro, command in (("--optimizer adam --lr 0.05", "networks-d60-adam"),
                             ("--tag sgd_curvature", "networks-d60-sgd"))
      for col, row in ((0, "NN trained"), (1, "NN gap"), (4, "NT trained"), (5, "NT gap"))],
    DocNumber("docs/networks.md",
              r"\| step of `W`, NN / NT \| " + r" \| ".join([f"{_F} / {_F}"] * 6) + r" \|",
              "networks-d60-sgd", _D60_ALL, 0.03, rel=True, measured="2026-12-06",
              order=tuple(i * 8 + c for i in range(6) for c in (3, 7))),
    # the largest gap (NT at N = 15), in per cent of R0
    DocNumber("README.md", rf"lands within {_F} % of the null risk of every NN and NT optimum",
              "networks-d60-sgd", _D60_ALL, 0.2, measured="2026-12-06", order=(13,), scale=100),
    # docs/networks.md: the small preset (long; measured 2026-12-06): risk / R0 to half a per cent of
    # the null risk (the claims decide at 0.02 and 0.05 R0), test errors to their two printed digits
    *[DocNumber("docs/networks.md", rf"\| {row} \| " + r" \| ".join([pair] * 6) + r" \|", "networks-small",
                _small_block(target, cols), tol, measured="2026-12-06",
                order=tuple(i * cols + c for i in range(6) for c in pick))
      for row, pair, target, cols, pick, tol in (
          ("RF exact / trained", f"{_F} / {_F}", "authors", 6, (0, 3), 0.005),
          ("NT exact / trained", rf"{_F} / \**{_F}\**", "authors", 6, (1, 4), 0.005),
          ("NN exact / trained", f"{_F} / {_F}", "authors", 6, (2, 5), 0.005),
          ("rank-5: NT exact / trained", f"{_F} / {_F}", "rank", 6, (1, 4), 0.005),
          ("rank-5: NN trained", _F, "rank", 6, (5,), 0.005),
          ("flat: NT exact / trained", f"{_F} / {_F}", "flat", 6, (1, 4), 0.005),
          ("flat: NN exact / trained", rf"{_F} / \**{_F}\**", "flat", 6, (2, 5), 0.005),
          ("mixture test error RF / NT / NN", f"{_F} / {_F} / {_F}", "mixture", 7, (3, 4, 5), 0.006),
          ("mixture, rank-5 `Δ`: test error RF / NT / NN", f"{_F} / {_F} / {_F}", "mixture-lowrank", 7,
           (3, 4, 5), 0.006))],
    DocNumber("docs/networks.md", rf"Bayes error:\s+{_F} for the full-rank mixture, {_F} for the rank-5 one",
              "networks-small", _small_block("mixture", 7) + r".*?" + _small_block("mixture-lowrank", 7),
              0.0006, measured="2026-12-06", order=(6, 48)),
    DocNumber("docs/networks.md", rf"RF > NT for `N < d`, every target — \*\*supported\*\* \((\d+) points, "
              rf"min RF − NT {_F}·R0\)", "networks-small",
              rf"SUPPORTED .*?For N < d random features.*? at (\d+) points .*?min RF − NT {_F}·R0", 0.0006,
              measured="2026-12-06"),
    DocNumber("docs/networks.md", r"NN < NT at (\d+)/12 points for the authors', rank-5 and\s+"
              r"rank-5-mixture targets, at (\d+)/12 for the flat `B` and the full-rank mixture; the "
              r"condition of the\s+`orders` preset below predicts it at (\d+)/60", "networks-small",
              r"authors: NN < NT at (\d+)/12; rank: NN < NT at (\d+)/12; flat: NN < NT at (\d+)/12; "
              r"mixture: NN < NT at (\d+)/12; mixture-lowrank: NN < NT at (\d+)/12.*?predicts the order at "
              r"(\d+)/60", 0,
              measured="2026-12-06", order=(0, 2, 5)),
    DocNumber("docs/networks.md", rf"\(max {_F}·R0; RF ≥\s+{_F}·R0\)", "networks-small",
              rf"NT/NN risk over \d+ points with N ≥ d: {_F}·R0 .*?min RF: {_F}·R0", 0.0006,
              measured="2026-12-06"),
    DocNumber("docs/networks.md", rf"the worst fit is NT at `N = d = 40`, {_F}·R0", "networks-small",
              rf"max \|trained − exact\| over 12 NN/NT fits \(seeds \[0\]\): {_F}·R0 \(NT at N = 40",
              0.0006, measured="2026-12-06"),
    DocNumber("docs/networks.md", rf"NN exact 0 \(≤ {_F}·R0; trained ≤ {_F}·R0 by plain SGD in "
              rf"1500\s+steps\) while NT ≥ {_F}·R0, at least {_F} of", "networks-small",
              rf"exact NN ≤ {_F}·R0 and NT ≥ {_F}·R0, at least {_F}·.*?trained NN: max {_F}·R0", 0.0006,
              measured="2026-12-06", order=(0, 3, 1, 2)),
    DocNumber("docs/networks.md", rf"`N = 1\.5d`: NT \({_F}\) and NN \({_F}\) classify far\s+better than RF "
              rf"\({_F}\); Bayes {_F}", "networks-small",
              rf"test error at ρ = 1\.5 .*?: RF {_F}, NT {_F}, NN {_F}, Bayes {_F}", 0.0006,
              measured="2026-12-06", order=(1, 2, 0, 3)),
    # README and docs/adaptive.md: test risks of the small preset (exact risks, mean ± sd over 5 seeds, to
    # 0.002 for their 3 printed decimals) and the win counts (exact)
    *[DocNumber("docs/adaptive.md", rf"\| {problem} \| {point} \| " + r" \| ".join([_PM] * 5) + " \\| "
                + r" *\| ".join([r"(\d)/5[^|\n]*"] * 4), "min-norm-small",
                _MN_ROW.format(problem.replace(" ", "-"), point), 0.002,
                measured="2026-12-06")
      for problem, point in (("nuisance", "s = 1"), ("nuisance", "s = 3"), ("nuisance", "s = 10"),
                             ("random features", "n = 50"), ("random features", "n = 100"),
                             ("random features", "n = 150"))],
    *[DocNumber("README.md", rf"\| {s} \| " + r" \| ".join([_PM] * 5) + r" \|", "min-norm-small",
                _MN_ROW.format("nuisance", f"s = {s}"), 0.002, measured="2026-12-06", order=tuple(range(10)))
      for s in (1, 3, 10)],
    # README and docs/adaptive.md: the RMSProp/Adam wins on held-out designs (long)
    *[DocNumber(doc, r"RMSProp wins (\d)/8 at\s+`s = 3`, (\d)/8 at `s = 10` and (\d)/8 at `s = 30`, Adam "
                r"(\d)/8, (\d)/8 and (\d)/8" if doc == "README.md" else
                r"RMSProp (\d)/8 at `s = 3`, (\d)/8 at `s = 10`, (\d)/8 at `s = 30` .*?; "
                r"Adam (\d)/8, (\d)/8, (\d)/8", "min-norm-heldout",
                "".join(rf"s = {s} [^\n]*? (\d)/8 +(\d)/8 +\S+\n.*?" for s in (3, 10, 30)),
                0.5, measured="2026-12-06", order=(0, 2, 4, 1, 3, 5))  # the table: RMSProp, Adam per s
      for doc in ("README.md", "docs/adaptive.md")],
    # docs/deflation.md: the staircase of one fit
    DocNumber("docs/deflation.md",
              r"t50 = crossing_steps\(result\.history, 0\.5\) +# \[(\d+), (\d+), (\d+), (\d+), (\d+)\]",
              "deflation-staircase", r"t50 (\d+) (\d+) (\d+) (\d+) (\d+)", 0.05, rel=True),
    DocNumber("docs/deflation.md",
              r"\[0, 1, 2, 3, 4\], \[" + _F + ", " + _F + ", " + _F + ", " + _F + r"\]",
              "deflation-staircase", r"ratios " + _F + " " + _F + " " + _F + " " + _F, 0.05, rel=True),
    # docs/deflation.md and README: the orth4 preset (issue 4's check): counts exact, fit times (steps,
    # evaluated every 5) to 5 %, ratios to their two printed decimals
    *[DocNumber("docs/deflation.md", _ORTH4_ROW.format(d, variant), "deflation-orth4",
                _ORTH4_ROW.format(d, variant), tol, rel=rel, order=pick, text_order=pick)
      for d in (20, 50) for variant in ("deflation", "no-reinit")
      for pick, tol, rel in (((0, 1, 2), 0, False), ((3, 4, 5, 6, 7), 0.05, True),
                             ((8, 9, 10, 11), 0.006, False))],
    DocNumber("README.md", r"decreasing order of weight in \*\*(\d+)/10\*\* \(`d = 20`\) and "
              r"\*\*(\d+)/10\*\* \(`d = 50`\) seeds", "deflation-orth4", _ORTH4_BOTH, 0, order=(0, 12)),
    DocNumber("README.md",
              rf"mass\): {_F}, {_F}, {_F}, {_F} \(`d = 20`\) and {_F}, {_F},\s+{_F}, {_F} \(`d = 50`\)",
              "deflation-orth4", _ORTH4_BOTH, 0.006, order=(8, 9, 10, 11, 20, 21, 22, 23)),
    DocNumber("docs/deflation.md",
              rf"The\s+claim line: (\d+)/20 `deflation` runs, median ratios {_F}, {_F}, {_F}, {_F} "
              r"over both `d`",
              "deflation-orth4",
              rf"-- (\d+)/20 runs \(variant deflation.*?t50_\(j\+1\)/t50_j: {_F}, {_F}, {_F}, {_F} against",
              0.006),
    # docs/moments.md and README: the mixture on Hsu & Kakade's configuration (5 seeds) and on the
    # bundled datasets (deterministic given the seeds: to their printed digits)
    *[DocNumber("docs/moments.md", rf"\| {row} \| {_F} \| [^|]* \| {_F} \|", "moments-hsu-kakade",
                rf"# {method}: worst mean error {_F}, worst weight error {_F}", 0.001)
      for row, method in (('`GaussianMixture\\(\\)` \\(`"spherical"`, per-component\\)', "spherical"),
                          (r'`GaussianMixture\(covariance_type="tied-spherical"\)`', "tied-spherical"),
                          (r"scikit-learn EM, spherical, `n_init=1`", "EM n_init=1"))],
    *[DocNumber("docs/moments.md", rf"\| {row} \| [^|]* \| [^|]* \| [^|]* \| {_F} {_F} {_F} \|",
                "moments-hsu-kakade", rf"\|\s+0 \|\s+{method} \|[^|]*\|[^|]*\| {_F} {_F} {_F} \|", 0.001)
      for row, method in ((r'`GaussianMixture\(\)` \(`"spherical"`, per-component\)', "spherical"),
                          (r"scikit-learn EM, spherical, `n_init=1`", "EM n_init=1"))],
    DocNumber("README.md", rf"has its worst mean {_F} off against\s+EM's {_F} and weights within {_F};",
              "moments-hsu-kakade", rf"# spherical: worst mean error {_F}, worst weight error {_F}.*?"
              rf"# EM n_init=1: worst mean error {_F}", 0.001, order=(0, 2, 1)),
    DocNumber("README.md", rf"\(`covariance_type=\"tied-spherical\"`\)\s+is off by {_F} and warns",
              "moments-hsu-kakade", rf"# tied-spherical: worst mean error {_F}", 0.005),
    *[DocNumber("docs/moments.md",
                rf"\| {ds} \| {feat} \| " + r" \| ".join([rf"\**{_F} / {_F}\**"] * 4) + r" \|",
                "moments-real", _REAL_BLOCK.format(ds, feat), 0.001, order=(0, 2, 4, 6, 8, 10, 12, 14))
      for ds in ("iris", "wine", "digits") for feat in ("raw", "centred")],
    *[DocNumber("README.md", rf"\| {row} \| " + r" \| ".join([f"{_F} / {_F}"] * 3) + r" \|", "moments-real",
                ".*?".join(_REAL_BLOCK.format(ds, "raw") for ds in ("iris", "wine", "digits")), 0.001,
                order=tuple(16 * i + 4 * m + c for i in range(3) for c in (0, 2)))
      for m, row in enumerate((r"overtensor `GaussianMixture` \(per-component σ², default\)",
                               r'overtensor `GaussianMixture\(covariance_type="tied-spherical"\)`',
                               r"EM `n_init=1` \(scikit-learn, spherical\)", r"EM `n_init=10`"))],
    # README: the mixture example ("≈": the weights of 20 000 samples, to 0.005 of the printed 0.25)
    DocNumber("README.md", r"gm\.covariances_\.round\(2\)\) +# ≈ \[" + " ".join([_F] * 4) + r"\] \["
              + " ".join([_F] * 4) + r"\]", "readme-mixture",
              r"^\[" + " +".join([_F] * 4) + r"\] \[" + " +".join([_F] * 4) + r"\]", 0.005),
    # README: the experiment on the standardized datasets: accuracy ± sd (to their 3 decimals), mean
    # log-likelihood per sample (the summary prints 3 digits: to 0.05; the text's sign is "−"); the
    # seconds are measured figures, dated in the text
    *[DocNumber("README.md",
                rf"\| {label} \| " + r" \| ".join([rf"{_F} ± {_F} / −{_F} / [\d.]+"] * 3) + r" \|",
                "moments-real-experiment", _mom_rows(method), tol, scale=scale, order=pick,
                text_order=pick)
      for method, label in (("overtensor",
                             r'overtensor `GaussianMixture\(covariance_type="tied-spherical"\)`'),
                            ("power-method", "tensor power method"),
                            ("tensorly-parafac", r"TensorLy `parafac` \(ALS, random init\)"),
                            ("em-1", "EM `n_init=1`"), ("em-10", "EM `n_init=10`"),
                            ("em-from-overtensor", r"EM from overtensor \(time includes ours\)"))
      for pick, tol, scale in (((0, 1, 3, 4, 6, 7), 0.0011, 1.0), ((2, 5, 8), 0.05, -1.0))],
    # docs/opt.md: the energy under orthogonal training (at the float64 floor: below 1e-15) and under
    # full training, the final risks (to 5 %)
    *[DocNumber("docs/opt.md", rf"\| {model} \| {regime} \| {_F} \| {_F} \| {_F} \|", "opt-energy-small",
                rf"(?:^{model} +|^{model} .*?^ +){regime} +3 +{_F} +{_F} +{_F}", tol, rel=rel, order=pick,
                text_order=pick)
      for model in ("network", "tensor") for regime in ("full", "orthogonal", "random-features")
      for pick, tol, rel in (((0,), 0.05, True),
                             ((1, 2), 0.05, True) if regime == "full" else ((1, 2), 1e-15, False))],
    # docs/opt.md: the smallest widths reaching ε (exact: they are grid points)
    DocNumber("docs/opt.md", r"\| 2 \| (\d+) \| (\d+) \| \*\*(\d+)\*\* \| (\d+) \|\n"
              r"\| 3 \| (\d+) \| (\d+) \| > (\d+) \(not reached in 1500 steps\) \| (\d+) \|",
              "opt-expressivity-small",
              r"2 +full +(\d+) +(\d+)\.0 .*?2 +orthogonal +\d+ +(\d+)\.0 .*?2 +random-features +\d+ "
              r"+(\d+)\.0 .*?3 +full +(\d+) +(\d+)\.0 .*?3 +orthogonal +\d+ +NaN +(\d+) .*?"
              r"3 +random-features +\d+ +(\d+)\.0", 0),
    # docs/adaptive.md: adaptive-regression's small preset, to the two digits the text prints (values at
    # the float64 floor, below 1e-13, are rounding whatever their digits)
    *[DocNumber("docs/adaptive.md", rf"\| {text} \| {cls} \| \**{_F}\** \| "
                + (rf"≤ {_F} \| — \| " if cls == "span-preserving" else rf"{_F} – {_F} \| {_F} \| ")
                + rf"{_F} ± {_F} \| {_F} \|", "adaptive-regression-small",
                rf"^ *{problem} +{optimizer} +5 +{cls}" + rf" +{_F}" * 8, 0.06, rel=True, floor=1e-13,
                order=(0, 3, 5, 6, 7) if cls == "span-preserving" else (0, 2, 3, 4, 5, 6, 7))
      for text, problem, optimizer, cls in (
          (r"Gaussian \| GD", "gaussian", "gd", "span-preserving"),
          (r"Gaussian \| span-preserving `diag\(\\\|r_k\\\|\)/n`", "gaussian", "span-preserving",
           "span-preserving"),
          (r"Gaussian \| AdaGrad \(0\.05\)", "gaussian", "adagrad", "rotating"),
          (r"Gaussian \| RMSProp \(1e-3\)", "gaussian", "rmsprop", "rotating"),
          (r"Gaussian \| Adam \(1e-3\)", "gaussian", "adam", "rotating"),
          (r"random features \| GD", "random-features", "gd", "span-preserving"),
          (r"random features \| span-preserving \(normalized\)", "random-features", "span-preserving",
           "span-preserving"),
          (r"random features \| AdaGrad", "random-features", "adagrad", "rotating"),
          (r"random features \| RMSProp", "random-features", "rmsprop", "rotating"),
          (r"random features \| Adam", "random-features", "adam", "rotating"))],
    # docs/adaptive.md: adaptive-networks' small preset: learning rate and norms to 1 %, accuracies,
    # their standard deviations and ranges to their printed decimals
    *[DocNumber("docs/adaptive.md",
                rf"\| {model} \| {label} \| {_F} \| {_F} ± {_F} \| {_F} \| {_F} \| {_F} \|",
                "adaptive-networks-small", rf"^ *{model} +{optimizer} +{_F} +5" + rf" +{_F}" * 6, tol,
                rel=rel, text_order=text, order=out)
      for model in ("two-layer", "mlp")
      for label, optimizer in (("SGD", "sgd"), ("momentum 0.9", "momentum"), ("AdaGrad", "adagrad"),
                               ("RMSProp", "rmsprop"), ("Adam", "adam"))
      for text, out, tol, rel in (((0, 3, 4), (0, 4, 5), 0.01, True), ((1, 2, 5), (1, 2, 6), 6e-4, False))],
    # docs/method.md: signs, odd-order mirror, rank = dimension, rank under noise (long; counts exact; a
    # count the text states for every target or run matches only when the output has it everywhere)
    DocNumber("docs/method.md", r"`exact-rank`: (\d)/8 recovered \(5/8 with alternating signs",
              "trusted-answers", r"all components recovered: (\d)/8", 0, measured="2026-12-06"),
    DocNumber("docs/method.md", r"`s = 0…23`: (\d+)/24 recovered, 11/24 before", "trusted-answers",
              r"s = 0-23: (\d+)/24 recovered", 0, measured="2026-12-06"),
    DocNumber("docs/method.md", r"widths 16 and 32 now both recover (\d)/8 on all five", "trusted-answers",
              r"\{'width': 16\}: (\d)/8(?: 8t [^|]*\| 8/8){4} .*?"
              r"\{'width': 32\}: 8/8(?: 8t [^|]*\| 8/8){4}", 0, measured="2026-12-06"),
    DocNumber("docs/method.md",
              r"every run returns\s+(\d) terms, (\d)/3 recovered, at noise 0, 1e-3, 1e-2 and 5e-2",
              "trusted-answers", r"noise 0: (\d)t (\d)/3" + r"[^\n]*(?:\| 3t 3/3[^\n|]*){2}\n"
              + "".join(rf"  noise {e}: 3t 3/3[^\n|]*(?:\| 3t 3/3[^\n|]*){{2}}\n"
                        for e in ("0.001", "0.01", "0.05")),
              0, measured="2026-12-06"),
    # docs/lazy.md: linearized weights in the real model; the linearized error is where CG stopped,
    # below the default tol 1e-4 (its digits are rounding), the others are measured values
    *[DocNumber("docs/lazy.md", rf"init_scale={s} scale={_F} laziness={_F} linearized error=\S+ "
                rf"full-model error={_F}", "lazy-init-scale",
                rf"init_scale={s} scale={_F} laziness={_F} linearized error=\S+ full-model error={_F}",
                0.02, rel=True) for s in (r" 1\.0", r" 3\.0", r"10\.0")],
    *[DocNumber("docs/lazy.md", rf"init_scale={s} .*? linearized error={_F} ", "lazy-init-scale",
                rf"init_scale={s} .*? linearized error={_F} ", 1e-4) for s in (r" 1\.0", r" 3\.0", r"10\.0")],
    # docs/numerics.md: plain vs shifted power method on a 2-tensor with eigenvalues ±1/2
    *[DocNumber("docs/numerics.md", rf"\| {seed} \| {_F}, \(", "power-variants",
                rf"{seed} plain adaptive {_F} ", 0.02, rel=True) for seed in range(3)],
    *[DocNumber("docs/numerics.md", rf"\| {seed} \| [^|]*\| ≤ {_F}, [^|]*\| ≤ {_F}, ", "power-variants",
                rf"{seed} shifted adaptive {_F} .*\n{seed} shifted conservative {_F} ", FLOOR)
      for seed in range(3)],
]


@cache
def run(name: str) -> str:
    """The stdout of command ``name``, run once per process in a fresh folder."""
    from tests.test_docs import _shims

    cmd = COMMANDS[name]
    with tempfile.TemporaryDirectory(prefix="doc-numbers-") as tmp:
        tmp = Path(tmp)
        _shims(tmp / "bin")
        (tmp / "work").mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
               "CHECKOUT": str(ROOT), "OVERTENSOR_BENCH_RESULTS": str(tmp / "results"),
               "COLUMNS": "200", "PATH": f"{tmp / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd.script], cwd=tmp / "work", env=env,
                              capture_output=True, text=True, timeout=1800 if cmd.long else 300)
    if proc.returncode != 0:
        raise RuntimeError(f"command {name!r} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def in_text(number: DocNumber) -> tuple[list[str], re.Match]:
    """The number(s) as the document prints them (fails when the sentence is gone)."""
    text = (ROOT / number.doc).read_text(encoding="utf-8")
    m = re.search(number.text, text, flags=re.S)
    if m is None:
        raise AssertionError(f"{number.doc}: no text matches {number.text!r}: the sentence changed; "
                             "update tests/doc_numbers.py with it")
    if number.measured:
        # next to the number, or in its section (a table's or a list's caption names it once)
        start = max(text.rfind("\n#", 0, m.start()), 0)
        end = text.find("\n#", m.end())
        near = text[min(start, max(0, m.start() - 400)):max(end if end >= 0 else len(text), m.end() + 400)]
        assert number.measured in near, (f"{number.doc}: a long command's number must say when it was "
                                         f"measured ({number.measured!r} next to it or in its section)")
    return [g for g in m.groups() if g is not None], m


def fresh(number: DocNumber) -> list[str]:
    """The number(s) the command prints now."""
    out = run(number.command)
    m = re.search(number.output, out, flags=re.S | re.M)
    if m is None:
        raise AssertionError(f"the output of {number.command!r} has no match for {number.output!r}:\n"
                             f"{out[-2000:]}")
    found = [g for g in m.groups() if g is not None]
    return [found[i] for i in number.order] if number.order else found


def compare(number: DocNumber) -> list[tuple[str, str, bool]]:
    """``(text, fresh, within tolerance)`` per number."""
    doc, _ = in_text(number)
    doc = [doc[i] for i in number.text_order] if number.text_order else doc
    new = fresh(number)
    if len(doc) != len(new):
        raise AssertionError(f"{number.id}: {len(doc)} numbers in the text, {len(new)} in the output")
    out = []
    for a, b in zip(doc, new, strict=True):
        x, y = float(a.replace(" ", "")), float(b) * number.scale  # "1 600": a thousands space
        limit = number.tol * abs(y) if number.rel else number.tol
        ok = math.isfinite(y) and (abs(x - y) <= limit + 1e-300 or max(abs(x), abs(y)) <= number.floor)
        out.append((a, b if number.scale == 1 else f"{y:g}", ok))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    long = "--long" in argv
    only = set(argv[argv.index("--only") + 1].split(",")) if "--only" in argv else None
    bad = 0
    for number in NUMBERS:
        if only is not None and number.command not in only:
            continue
        if COMMANDS[number.command].long and not long:
            print(f"skip (long)  {number.id}")
            continue
        for a, b, ok in compare(number):
            bad += not ok
            tol = f"{number.tol:g}{' rel' if number.rel else ''}"
            print(f"{'ok   ' if ok else 'DRIFT'}  {number.doc}: text {a}, now {b} (tol {tol})  "
                  f"[{number.command}]")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
