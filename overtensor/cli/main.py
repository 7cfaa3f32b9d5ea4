"""Command-line interface: a thin layer over the Python API.

``overtensor fit ...`` runs one fit; ``experiment``, ``results``, ``report`` and ``demo`` come from
:mod:`overtensor.cli.experiment`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

#: Wall clock at the import of the CLI (before numpy/torch): ``seconds_total`` counts from here.
_STARTED = time.perf_counter()

#: Options that only describe the random synthetic target (an error with your own data).
SYNTHETIC_ONLY = ("dim", "rank", "components", "weights", "noise")

#: ``overtensor.METHODS`` and the fit regimes, spelled out so that a bad ``--method`` is reported
#: before torch is imported (tests/test_startup.py checks that they agree with the library).
FIT_METHODS = ("beyond-lazy", "gd", "exact-rank", "deflation", "power-method", "spm")
FIT_REGIMES = ("full", "lazy", "random-features", "alpha-scaled", "orthogonal")
#: Methods that take the target's rank when ``--width`` is not given.
_RANK_METHODS = ("exact-rank", "power-method", "spm")

#: Subcommands whose parser is built alone when they are the command (their start-up does not
#: pay for the experiment commands' imports).
_FAST_COMMANDS = ("fit", "train", "moments")


def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit", help="decompose your own tensor (--tensor, --cp, --samples) or a random synthetic one",
        description="Decompose one symmetric tensor and print a summary. The target is your own "
                    "(--tensor, --cp or --samples) or, by default, a random synthetic one "
                    "(--order, --dim, --rank, --components, --weights, --noise).")
    # Argument groups mirror fit's config objects (overtensor.GradientSchedule, Extraction, Runtime).
    target = p.add_argument_group("target (your own file or a synthetic one)")
    method = p.add_argument_group("what is fitted (keywords of overtensor.fit)")
    schedule = p.add_argument_group("schedule (overtensor.GradientSchedule)")
    extraction = p.add_argument_group("extraction (overtensor.Extraction)")
    runtime = p.add_argument_group("runtime (overtensor.Runtime)")
    output = p.add_argument_group("output")
    data = target.add_mutually_exclusive_group()
    data.add_argument("--tensor", metavar="T.npy",
                      help="a dense symmetric array of shape (d,)*l (.npy, .npz, .csv/.txt for l = 2); "
                           "symmetry is checked")
    data.add_argument("--cp", nargs=2, metavar=("WEIGHTS.npy", "FACTORS.npy"),
                      help="a CP tensor sum_j w_j u_j^(x l): weights of shape (r,) and factors of "
                           "shape (r, d), one component per row; l = --order")
    data.add_argument("--samples", metavar="X.npy|X.csv",
                      help="samples of shape (n, d): the target is the empirical moment tensor "
                           "(1/n) sum_k x_k^(x L), L = --moment (never formed)")
    target.add_argument("--moment", type=int, default=None, metavar="L",
                        help="order L of the moment tensor of --samples (required with --samples)")
    target.add_argument("--order", type=int, default=None,
                        help="tensor order l (default 3; with --tensor the array's number of axes)")
    target.add_argument("--dim", type=int, default=None, help="synthetic target: dimension d (default 100)")
    target.add_argument("--rank", type=int, default=None,
                        help="synthetic target: its rank r (default 10); the cap on the returned rank "
                             "is --max-rank")
    method.add_argument("--width", type=int, default=None,
                        help="number of rank-one terms m (default 5*rank; required with --tensor and "
                             "--samples)")
    method.add_argument("--method", default="beyond-lazy", choices=FIT_METHODS, metavar="METHOD",
                        help="beyond-lazy | gd | exact-rank | deflation | power-method | spm "
                             "(default beyond-lazy)")
    runtime.add_argument("--engine", default="auto", choices=("auto", "paper", "autograd"),
                         help="auto: the fastest route to the same decomposition (default); paper: the "
                              "paper's exact schedule; autograd: the paper's schedule on autograd")
    method.add_argument("--regime", default="full", choices=FIT_REGIMES, metavar="REGIME",
                        help="full | lazy | random-features | alpha-scaled | orthogonal (default "
                             "full); the summary then also shows the laziness diagnostics")
    output.add_argument("--laziness", action="store_true",
                        help="also compute the tangent-kernel change (automatic with a --regime other "
                             "than full; it needs torch.func, which costs ~2 s of import)")
    method.add_argument("--rotation", default=None,
                        help="with --regime orthogonal: how R stays orthogonal: cayley | matrix_exp | "
                             "householder | gram-schmidt | lowdin | riemannian | stochastic (default cayley)")
    from overtensor.cli.train import ALPHA_HELP

    method.add_argument("--alpha", type=float, default=None, help=ALPHA_HELP)
    target.add_argument("--components", default=None, help="synthetic target: random | orthonormal")
    target.add_argument("--weights", default=None,
                        help="synthetic target: equal | geometric | linear | a ratio in (0, 1] "
                             "(default equal)")
    target.add_argument("--noise", type=float, default=None,
                        help="synthetic target: relative noise level (small d only)")
    target.add_argument("--seed", type=int, default=0, help="random seed (target and fit)")
    runtime.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    runtime.add_argument("--dtype", default=None,
                         help="float64 (CPU default) | float32 (CUDA default) | float16 | bfloat16 "
                              "(errors are reported in float64)")
    schedule.add_argument("--steps", type=int, default=20000, help="step budget (default 20000)")
    method.add_argument("--tol", type=float, default=1e-4, help="target relative error (default 1e-4)")
    schedule.add_argument("--lr", type=float, default=None, help="step size (default 0.5/max(order,4))")
    runtime.add_argument("--threads", default=None,
                         help="intra-op torch threads: N, or auto (also 0) (default $OVERTENSOR_THREADS, "
                              "else auto: one thread for small problems)")
    output.add_argument("-o", "--output", default=None, metavar="RESULT.npz|RESULT.json",
                        help="also write the result: .npz (weights, factors, order, summary as JSON) "
                             "or .json")
    extraction.add_argument("--max-rank", type=int, default=None,
                            help="cap on the number of returned terms (Extraction(rank=...); e.g. "
                                 "with --noise)")
    output.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")
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

    own = args.tensor or args.cp or args.samples  # options were checked by _check_fit_args
    if not own:
        def given_or(value, default):  # 0 is a value the user gave (and ot.random_target refuses)
            return default if value is None else value

        return ot.random_target(
            order=given_or(args.order, 3), dim=given_or(args.dim, 100), rank=given_or(args.rank, 10),
            components=given_or(args.components, "random"),
            weights=_weights_arg(given_or(args.weights, "equal")), noise=given_or(args.noise, 0.0),
            random_state=args.seed, device=args.device, dtype=args.dtype)
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


def _check_fit_args(args) -> None:
    """The checks of ``overtensor fit`` that need no numerical library, before any import."""
    for name in ("order", "dim", "rank", "width", "steps", "moment", "max_rank"):
        value = getattr(args, name)
        low = 0 if name == "max_rank" else 1
        if value is not None and value < max(low, 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("tol", "noise"):
        value = getattr(args, name)
        if value is not None and not value >= 0:
            raise ValueError(f"--{name} must be >= 0, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.rotation is not None and args.regime != "orthogonal":
        raise ValueError(f"--rotation {args.rotation} needs --regime orthogonal")
    # Flags the method or regime would ignore, named as typed: fit's own rule (option_rules, free
    # of torch) applied to the options the flags set, before any numerical import.
    from overtensor.tensors.option_rules import DIRECT_METHODS, unused_options

    flags = {"max_steps": ("--steps", "schedule", args.steps != 20000),
             "lr": ("--lr", "schedule", args.lr is not None),
             "rank": ("--max-rank", "extraction", args.max_rank is not None),
             "engine": ("--engine", "runtime", args.engine != "auto")}
    bad = unused_options(args.method, args.regime,
                         {name: group for name, (_, group, given) in flags.items() if given})
    if bad:
        why = (f"--method {args.method} (it takes no gradient steps)"
               if args.method in DIRECT_METHODS
               else f"--regime {args.regime} (one phase, no extraction)")
        raise ValueError(f"{', '.join(flags[name][0] for name in bad)}: not used by {why}; remove "
                         f"{'it' if len(bad) == 1 else 'them'}")
    if args.moment is not None and not args.samples:
        raise ValueError(f"--moment {args.moment} needs --samples")
    if args.tensor or args.cp or args.samples:
        given = [f"--{k}" for k in SYNTHETIC_ONLY if getattr(args, k) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for the synthetic target, not with your "
                             f"own data" + ("; the cap on the returned rank is --max-rank"
                                            if "--rank" in given else ""))
        if args.samples and args.moment is None:
            raise ValueError("--samples needs --moment L (the order of the moment tensor)")
        if args.samples and args.order is not None and args.order != args.moment:
            raise ValueError(f"--order {args.order} and --moment {args.moment} disagree; give "
                             f"--moment")
        if args.width is None and args.method not in _RANK_METHODS and not args.cp:
            raise ValueError(f"--width is required with "
                             f"{'--tensor' if args.tensor else '--samples'} "
                             "(the number of rank-one terms m)")


def _cmd_fit(args) -> int:
    _check_fit_args(args)  # argument errors before numpy and torch are imported
    from overtensor._io import check_output_path
    from overtensor.cli.train import alpha_option
    from overtensor.cli.userdata import RESULT_SUFFIXES, check_finite_result

    if args.output is not None:
        check_output_path(args.output, RESULT_SUFFIXES)  # before any work
    import overtensor as ot
    from overtensor.cli.userdata import write_result
    from overtensor.tensors.config import split_options

    target = _fit_target(args)
    cap = args.max_rank  # a cap on the returned rank (--rank is the synthetic target's rank)
    rank = target.truth.rank if target.truth is not None else None
    width = args.width if args.width is not None else (5 * rank if rank is not None else None)
    if args.method == "exact-rank" or (args.method in _RANK_METHODS and args.width is None):
        width = None  # the target's rank (power-method, spm: --width sets the number of components)
    elif width is None:
        raise ValueError(f"--width is required with {'--tensor' if args.tensor else '--samples'} "
                         "(the number of rank-one terms m)")
    # The flags by name, grouped into fit's config objects (schedule, extraction, runtime).
    flat = dict(max_steps=args.steps, lr=args.lr, progress=not args.json, threads=args.threads)
    if cap is not None:
        flat["rank"] = cap
    if args.engine != "auto":
        flat["engine"] = args.engine
    result = ot.fit(target, width=width, method=args.method, tol=args.tol, random_state=args.seed,
                    regime=args.regime, **alpha_option(args.regime, args.alpha),
                    **_orthogonal_option(args), **split_options(flat))
    check_finite_result(result)  # NaN/inf is never a result (exit 5), printed or written
    summary = result.summary()
    if result.params0 and (args.laziness or args.regime != "full"):
        # torch.func (and with it torch._dynamo, ~2 s of import) only when asked for.
        from overtensor.tensors.recorders import final_laziness

        summary["kernel_change"] = final_laziness(result, args.regime)["kernel_change"]
    elif args.laziness:  # said, not dropped: the answer came without gradient steps
        summary.setdefault("warnings", []).append(
            f"--laziness: no trained model to measure (the {result.info['route']['engine']} "
            f"route answered without gradient steps); pass --engine paper")
    summary.setdefault("regime", args.regime)
    summary.setdefault("width", width)
    if args.output is not None:
        summary["output"] = str(write_result(args.output, result, summary))
    # The whole command's wall time (imports included) beside the fit's own "seconds", and the
    # process's CPU time (interpreter start-up included).
    summary["seconds_total"] = round(time.perf_counter() - _STARTED, 4)
    summary["cpu_seconds_total"] = round(time.process_time(), 4)
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


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``overtensor`` parser; ``commands``: only these subcommands (default all)."""
    from overtensor.cli.exit_codes import EPILOG, OneLineParser

    parser = OneLineParser(
        prog="overtensor",
        description="Over-parameterized symmetric tensor decomposition with gradient methods.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = set(commands) if commands is not None else None
    if wanted is None or "fit" in wanted:
        _add_fit(sub)
    if wanted is None or "train" in wanted:
        from overtensor.cli.train import add_parser as add_train

        add_train(sub)
    if wanted is None:
        from overtensor.cli.experiment import add_commands

        add_commands(sub)
    if wanted is None or "moments" in wanted:
        from overtensor.cli.moments import add_parser as add_moments

        add_moments(sub)
    return parser


def _warnings_on_one_line() -> None:
    """A library warning reaches the terminal as ``overtensor: warning: MESSAGE`` (one line),
    not as Python's two lines with the file and source line of whatever library raised it."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"overtensor: warning: {text}", file=sys.stderr if file is None else file)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (table: :mod:`overtensor.cli.exit_codes`).

    The one place where failures become exit codes: an expected failure of any subcommand is one
    line on stderr and a documented code, never a traceback.
    """
    from overtensor.cli.exit_codes import report, signals_as_exceptions

    _warnings_on_one_line()
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `overtensor fit ...`: build that subcommand's parser alone (the experiment commands' parser
    # imports pydantic specs); `--help` and every other command get the whole parser.
    first = next((a for a in args_list if not a.startswith("-")), None)
    fast = first in _FAST_COMMANDS and args_list and args_list[0] == first
    parser = build_parser([first] if fast else None)
    try:
        args = parser.parse_args(args_list)
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
