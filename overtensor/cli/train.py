"""``overtensor train``: one two-layer network fit, a thin layer over
:func:`overtensor.networks.train.train_network`.

Registered in :mod:`overtensor.cli.main` by :func:`add_parser`.
"""

from __future__ import annotations

import json

#: ``--alpha`` has no default: at ``α = 1`` the alpha-scaled model ``T(θ_0) + α(T(θ) − T(θ_0))``
#: on the loss ``/α²`` is exactly the full regime, so a default would make the option a no-op.
ALPHA_HELP = ("alpha of --regime alpha-scaled, required there (alpha = 1 is exactly the full "
              "regime; large alpha tends to the lazy one); refused with another --regime")


def alpha_option(regime: str, alpha: float | None) -> dict:
    """``{"alpha": α}`` for ``--regime alpha-scaled`` (where ``--alpha`` is required), ``{}``
    otherwise; ``ValueError`` (one line) for a missing or an unused ``--alpha``."""
    if regime == "alpha-scaled":
        if alpha is None:
            raise ValueError("--regime alpha-scaled needs --alpha ALPHA (alpha = 1 is exactly the "
                             "full regime; large alpha tends to the lazy one)")
        return {"alpha": alpha}
    if alpha is not None:
        raise ValueError(f"--alpha {alpha:g} is only used with --regime alpha-scaled, "
                         f"got --regime {regime}")
    return {}


def add_parser(sub) -> None:
    """Add the ``train`` subcommand to the ``overtensor`` parser's subparsers."""
    p = sub.add_parser("train", help="train one two-layer network (RF / NT / NN regimes) on synthetic "
                       "data and print its risks",
                       description="Train one two-layer network f(x) = s_N sum_i a_i sigma(<w_i, x>) "
                                   "in one regime (Ghorbani, Mei, Misiakiewicz, Montanari 2019; "
                                   "docs/networks.md) and print its test, null and training risks.")
    p.add_argument("--regime", default="full",
                   help="full | lazy | random-features | alpha-scaled | orthogonal (or any registered "
                   "regime; default full)")
    p.add_argument("--activation", default="quadratic",
                   help="quadratic | hermite | relu | tanh (default quadratic)")
    p.add_argument("--degree", type=int, default=None,
                   help="degree l of --activation hermite (default 2; refused with another activation)")
    p.add_argument("--width", type=int, default=20, help="number of neurons N (default 20)")
    p.add_argument("--dim", type=int, default=40, help="input dimension d (default 40)")
    p.add_argument("--train-samples", dest="samples", metavar="N", type=int, default=None,
                   help="fixed training-set size (default: online, fresh samples every step)")
    p.add_argument("--test-samples", type=int, default=10000, help="test-set size (default 10000)")
    p.add_argument("--data", default="authors",
                   help="authors (y = x'Bx - tr B, B = diag(gamma)/sqrt d) | rank | mixture "
                        "(default authors)")
    p.add_argument("--rank", type=int, default=None,
                   help="rank of B for --data rank (default 5; refused with other --data)")
    p.add_argument("--noise", type=float, default=None,
                   help="label noise standard deviation of --data authors or rank (default 0; "
                        "refused with --data mixture)")
    p.add_argument("--scaling", default="mean-field",
                   help="mean-field (1/N) | ntk (1/sqrt N) | none (default mean-field)")
    p.add_argument("--shared-a", action="store_true", help="one shared output weight a")
    p.add_argument("--optimizer", default="sgd",
                   help="gd | sgd | momentum | nesterov | adagrad | rmsprop | adam | adamw "
                        "(default sgd)")
    p.add_argument("--lr", type=float, default=None,
                   help="step size of every parameter (default: for sgd/gd/momentum/nesterov, "
                        "per-block curvature steps c/lambda_max of the mini-batch Hessian at the "
                        "initialization, train.curvature_steps; else train.default_lr)")
    p.add_argument("--momentum", type=float, default=None,
                   help="heavy-ball momentum of --optimizer sgd (default: 0.9 in the lazy regime at "
                        "the curvature steps, else 0)")
    p.add_argument("--safety", type=float, default=None,
                   help="c of the curvature steps c/lambda_max, in (0, 2) (default 0.5); only for "
                        "the default step of sgd/gd/momentum/nesterov (refused with --lr or another "
                        "--optimizer)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=int, default=100, help="samples per step (default 100)")
    p.add_argument("--alpha", type=float, default=None, help=ALPHA_HELP)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0, help="random seed (data and initialization)")
    p.add_argument("--json", action="store_true", help="print one JSON object, no progress bar")
    p.set_defaults(func=_cmd_train)


def _refuse_unused(args) -> None:
    """Refuse an option given where it changes nothing (each would be silently ignored)."""
    unused = [
        ("--alpha", args.alpha, args.regime != "alpha-scaled", "--regime alpha-scaled"),
        ("--degree", args.degree, args.activation != "hermite", "--activation hermite"),
        ("--rank", args.rank, args.data != "rank", "--data rank"),
        ("--noise", args.noise, args.data == "mixture", "--data authors or --data rank"),
    ]
    for option, value, ignored, where in unused:
        if value is not None and ignored:
            raise ValueError(f"{option} {value} applies only to {where}; remove it or add that")
    if args.regime == "alpha-scaled" and args.alpha is None:
        raise ValueError("--regime alpha-scaled needs --alpha (alpha = 1 is the full regime)")


def _cmd_train(args) -> int:
    import torch

    from overtensor._checks import check_choice, check_int
    from overtensor.networks.data import gaussian_mixture, gaussian_quadratic
    from overtensor.networks.model import NetworkSpec
    from overtensor.networks.quadratic_risk import regime_optima
    from overtensor.networks.train import TrainConfig, train_network

    # Everything is validated before any work; ValueError becomes one line on stderr (cli.main).
    check_choice("data", args.data, ("authors", "rank", "mixture"))
    _refuse_unused(args)
    dim = check_int("dim", args.dim, 1)
    spec = NetworkSpec(args.width, dim, activation=args.activation,
                       degree=2 if args.degree is None else args.degree,
                       scaling=args.scaling, shared_a=args.shared_a)
    try:
        config = TrainConfig(regime=args.regime, optimizer=args.optimizer, lr=args.lr,
                             momentum=args.momentum, safety=args.safety,
                             steps=args.steps, batch_size=args.batch_size, samples=args.samples,
                             test_samples=args.test_samples,
                             **alpha_option(args.regime, args.alpha),
                             device=args.device, progress=not args.json)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    gen = torch.Generator().manual_seed(check_int("seed", args.seed, 0))
    if args.data == "mixture":
        data = gaussian_mixture(dim, gen)
    else:
        rank = (5 if args.rank is None else args.rank) if args.data == "rank" else None
        data = gaussian_quadratic(dim, gen, rank=rank, noise=args.noise or 0.0)
    # A DivergenceError reaches cli.main: one line, exit code 5 (cli/exit_codes.py).
    res = train_network(data, spec, config, random_state=args.seed + 1)
    out = res.summary()
    if res.exact and not spec.shared_a:
        opt = regime_optima(res.params0["W"].cpu(), data.B)
        out.update({f"{k}_optimum": opt[k] / opt["null"] for k in ("rf", "nt", "nn")})
    if args.json:
        print(json.dumps(out))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="overtensor train", show_header=False)
        for key, value in out.items():
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        Console().print(table)
    return 0
