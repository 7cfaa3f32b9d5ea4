"""Command-line interface: a thin layer over the Python API.

``overtensor fit ...`` runs one fit; ``experiment``, ``results``, ``report`` and ``demo`` come from
:mod:`overtensor.experiments.cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="decompose a random synthetic target once and print a summary")
    p.add_argument("--order", type=int, default=3, help="tensor order l (default 3)")
    p.add_argument("--dim", type=int, default=100, help="dimension d (default 100)")
    p.add_argument("--rank", type=int, default=10, help="rank r of the target (default 10)")
    p.add_argument("--width", type=int, default=None,
                   help="number of rank-one terms m (default 5*rank)")
    p.add_argument("--method", default="beyond-lazy", help="beyond-lazy | gd | exact-rank | "
                   "deflation | power-method (default beyond-lazy)")
    p.add_argument("--regime", default="full", help="full | lazy | random-features | alpha-scaled "
                   "(default full); the summary then also shows the laziness diagnostics")
    p.add_argument("--alpha", type=float, default=1.0, help="alpha of --regime alpha-scaled (default 1)")
    p.add_argument("--components", default="random", help="random | orthonormal")
    p.add_argument("--weights", default="equal",
                   help="equal | geometric | linear | a ratio in (0, 1] (default equal)")
    p.add_argument("--noise", type=float, default=0.0, help="relative noise level (small d only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (target and fit)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=None, help="float64 (CPU default) | float32")
    p.add_argument("--steps", type=int, default=20000, help="step budget (default 20000)")
    p.add_argument("--tol", type=float, default=1e-4, help="target relative error (default 1e-4)")
    p.add_argument("--lr", type=float, default=None, help="step size (default 0.5/max(order,4))")
    p.add_argument("--max-rank", type=int, default=None,
                   help="cap on the number of returned terms (fit(rank=...); e.g. with --noise)")
    p.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")
    p.set_defaults(func=_cmd_fit)


def _weights_arg(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _cmd_fit(args) -> int:
    import overtensor as ot

    target = ot.random_target(
        order=args.order, dim=args.dim, rank=args.rank, components=args.components,
        weights=_weights_arg(args.weights), noise=args.noise, random_state=args.seed,
        device=args.device, dtype=args.dtype,
    )
    width = args.width if args.width is not None else 5 * args.rank
    if args.method == "exact-rank" or (args.method == "power-method" and args.width is None):
        width = None  # the target's rank (power-method: --width sets the number of components)
    from overtensor.laziness import final_laziness

    result = ot.fit(target, width=width, method=args.method, max_steps=args.steps, tol=args.tol,
                    lr=args.lr, random_state=args.seed, progress=not args.json,
                    regime=args.regime, alpha=args.alpha,
                    **({} if args.max_rank is None else {"rank": args.max_rank}))
    summary = result.summary()
    if args.method != "power-method":
        summary["kernel_change"] = final_laziness(result, args.regime)["kernel_change"]
    summary.setdefault("regime", args.regime)
    summary.setdefault("width", width)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="overtensor fit", show_header=False)
    for key, value in summary.items():
        if key == "warnings":
            continue
        text = f"{value:.3e}" if isinstance(value, float) and "error" in key else str(value)
        table.add_row(key, text)
    console = Console()
    console.print(table)
    for line in summary.get("warnings", []):  # what went wrong and what to try, one line each
        console.print(f"[bold yellow]warning:[/] {line}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overtensor",
        description="Over-parameterized symmetric tensor decomposition with gradient methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fit(sub)
    from overtensor.experiments.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"overtensor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
