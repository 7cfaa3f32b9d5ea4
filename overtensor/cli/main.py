"""Command-line interface: a thin layer over the Python API.

``overtensor fit ...`` runs one fit; ``experiment``, ``results``, ``report`` and ``demo`` come from
:mod:`overtensor.cli.experiment`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

#: Options that only describe the random synthetic target (an error with your own data).
SYNTHETIC_ONLY = ("dim", "components", "weights", "noise")


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit", help="decompose your own tensor (--tensor, --cp, --samples) or a random synthetic one",
        description="Decompose one symmetric tensor and print a summary. The target is your own "
                    "(--tensor, --cp or --samples) or, by default, a random synthetic one "
                    "(--order, --dim, --rank, --components, --weights, --noise).")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--tensor", metavar="T.npy",
                      help="a dense symmetric array of shape (d,)*l (.npy, .npz, .csv/.txt for l = 2); "
                           "symmetry is checked")
    data.add_argument("--cp", nargs=2, metavar=("WEIGHTS.npy", "FACTORS.npy"),
                      help="a CP tensor sum_j w_j u_j^(x l): weights of shape (r,) and factors of "
                           "shape (r, d), one component per row; l = --order")
    data.add_argument("--samples", metavar="X.npy|X.csv",
                      help="samples of shape (n, d): the target is the empirical moment tensor "
                           "(1/n) sum_k x_k^(x L), L = --moment (never formed)")
    p.add_argument("--moment", type=int, default=None, metavar="L",
                   help="order L of the moment tensor of --samples (required with --samples)")
    p.add_argument("--order", type=int, default=None,
                   help="tensor order l (default 3; with --tensor the array's number of axes)")
    p.add_argument("--dim", type=int, default=None, help="synthetic target: dimension d (default 100)")
    p.add_argument("--rank", type=int, default=None,
                   help="synthetic target: its rank r (default 10); your own data: a cap on the "
                        "number of components returned (overtensor.fit(rank=...))")
    p.add_argument("--width", type=int, default=None,
                   help="number of rank-one terms m (default 5*rank; required with --tensor and "
                        "--samples)")
    p.add_argument("--method", default="beyond-lazy", help="beyond-lazy | gd | exact-rank | "
                   "deflation | power-method (default beyond-lazy)")
    p.add_argument("--regime", default="full", help="full | lazy | random-features | alpha-scaled | "
                   "orthogonal (default full); the summary then also shows the laziness diagnostics")
    p.add_argument("--rotation", default=None,
                   help="with --regime orthogonal: how R stays orthogonal: cayley | matrix_exp | "
                        "householder | gram-schmidt | lowdin | riemannian | stochastic (default cayley)")
    p.add_argument("--alpha", type=float, default=1.0, help="alpha of --regime alpha-scaled (default 1)")
    p.add_argument("--components", default=None, help="synthetic target: random | orthonormal")
    p.add_argument("--weights", default=None,
                   help="synthetic target: equal | geometric | linear | a ratio in (0, 1] "
                        "(default equal)")
    p.add_argument("--noise", type=float, default=None,
                   help="synthetic target: relative noise level (small d only)")
    p.add_argument("--seed", type=int, default=0, help="random seed (target and fit)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=None, help="float64 (CPU default) | float32")
    p.add_argument("--steps", type=int, default=20000, help="step budget (default 20000)")
    p.add_argument("--tol", type=float, default=1e-4, help="target relative error (default 1e-4)")
    p.add_argument("--lr", type=float, default=None, help="step size (default 0.5/max(order,4))")
    p.add_argument("--threads", default=None,
                   help="intra-op torch threads: N, or auto (also 0) (default $OVERTENSOR_THREADS, "
                        "else auto: one thread for small problems)")
    p.add_argument("-o", "--output", default=None, metavar="RESULT.npz|RESULT.json",
                   help="also write the result: .npz (weights, factors, order, summary as JSON) "
                        "or .json")
    p.add_argument("--max-rank", type=int, default=None,
                   help="cap on the number of returned terms (fit(rank=...); e.g. with --noise)")
    p.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")
    p.set_defaults(func=_cmd_fit)


def _weights_arg(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _fit_target(args):
    """The target of ``overtensor fit``: the user's file(s) or a random synthetic one."""
    import overtensor as ot
    from overtensor.cli import userdata

    own = args.tensor or args.cp or args.samples
    if args.moment is not None and not args.samples:
        raise ValueError(f"--moment {args.moment} needs --samples")
    if not own:
        def given_or(value, default):  # 0 is a value the user gave (and ot.random_target refuses)
            return default if value is None else value

        return ot.random_target(
            order=given_or(args.order, 3), dim=given_or(args.dim, 100), rank=given_or(args.rank, 10),
            components=given_or(args.components, "random"),
            weights=_weights_arg(given_or(args.weights, "equal")), noise=given_or(args.noise, 0.0),
            random_state=args.seed, device=args.device, dtype=args.dtype)
    given = [f"--{k}" for k in SYNTHETIC_ONLY if getattr(args, k) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: only for the synthetic target, not with your own data")
    if args.tensor:
        target = userdata.tensor_target(args.tensor, dtype=args.dtype, device=args.device)
        if args.order is not None and args.order != target.order:
            raise ValueError(f"--order {args.order} does not match --tensor {args.tensor} "
                             f"(an array of order {target.order})")
        return target
    if args.cp:
        return userdata.cp_target(*args.cp, args.order or 3, dtype=args.dtype, device=args.device)
    if args.moment is None:
        raise ValueError("--samples needs --moment L (the order of the moment tensor)")
    if args.order is not None and args.order != args.moment:
        raise ValueError(f"--order {args.order} and --moment {args.moment} disagree; give --moment")
    return userdata.samples_target(args.samples, args.moment, dtype=args.dtype, device=args.device)


def _orthogonal_option(args) -> dict:
    """``orthogonal=OrthogonalOptions(rotation=...)`` when ``--rotation`` is given."""
    if args.rotation is None:
        return {}
    from overtensor.tensors.orthogonal_fit import OrthogonalOptions

    return {"orthogonal": OrthogonalOptions(rotation=args.rotation)}


def _cmd_fit(args) -> int:
    import overtensor as ot
    from overtensor._io import check_output_path
    from overtensor.cli.userdata import RESULT_SUFFIXES, check_finite_result, write_result

    if args.output is not None:
        check_output_path(args.output, RESULT_SUFFIXES)  # before any work
    if args.rotation is not None and args.regime != "orthogonal":
        raise ValueError(f"--rotation {args.rotation} needs --regime orthogonal")
    target = _fit_target(args)
    own = bool(args.tensor or args.cp or args.samples)
    # A cap on the returned rank: --max-rank, or --rank on the user's own data.
    cap = args.max_rank if args.max_rank is not None else (args.rank if own else None)
    rank = target.truth.rank if target.truth is not None else None
    width = args.width if args.width is not None else (5 * rank if rank is not None else None)
    if args.method == "exact-rank" or (args.method == "power-method" and args.width is None):
        width = None  # the target's rank (power-method: --width sets the number of components)
    elif width is None:
        raise ValueError(f"--width is required with {'--tensor' if args.tensor else '--samples'} "
                         "(the number of rank-one terms m)")
    from overtensor.tensors.recorders import final_laziness

    result = ot.fit(target, width=width, method=args.method, max_steps=args.steps, tol=args.tol,
                    lr=args.lr, random_state=args.seed, progress=not args.json,
                    regime=args.regime, alpha=args.alpha, threads=args.threads,
                    **({} if cap is None else {"rank": cap}), **_orthogonal_option(args))
    check_finite_result(result)  # NaN/inf is never a result (exit 5), printed or written
    summary = result.summary()
    if args.method != "power-method":
        summary["kernel_change"] = final_laziness(result, args.regime)["kernel_change"]
    summary.setdefault("regime", args.regime)
    summary.setdefault("width", width)
    if args.output is not None:
        summary["output"] = str(write_result(args.output, result, summary))
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
        if isinstance(value, float):
            text = f"{value:.3e}" if "error" in key else f"{value:.4g}"
        else:
            text = str(value)
        table.add_row(key, text)
    console = Console()
    console.print(table)
    for line in summary.get("warnings", []):  # what went wrong and what to try, one line each
        console.print(f"[bold yellow]warning:[/] {line}")


def build_parser() -> argparse.ArgumentParser:
    from overtensor.cli.exit_codes import EPILOG, OneLineParser

    parser = OneLineParser(
        prog="overtensor",
        description="Over-parameterized symmetric tensor decomposition with gradient methods.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fit(sub)
    from overtensor.cli.experiment import add_commands
    from overtensor.cli.train import add_parser as add_train

    add_train(sub)

    add_commands(sub)
    from overtensor.cli.moments import add_parser as add_moments

    add_moments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (table: :mod:`overtensor.cli.exit_codes`).

    The one place where failures become exit codes: an expected failure of any subcommand is one
    line on stderr and a documented code, never a traceback.
    """
    from overtensor.cli.exit_codes import report, signals_as_exceptions

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error already printed on one line (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    with signals_as_exceptions():
        try:
            return int(args.func(args) or 0)
        except BaseException as exc:
            code = report(exc)
            if code is None:
                raise
            return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
