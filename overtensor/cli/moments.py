"""``overtensor moments gmm|topics|lda``: method-of-moments estimators from the command line.

A thin layer over :class:`overtensor.moments.GaussianMixture`,
:class:`overtensor.moments.SingleTopicModel` and :class:`overtensor.moments.SpectralLDA`: read a
CSV or NPY file, fit, print the parameters (a readable table, or one JSON object with ``--json``)
and optionally write them to ``-o`` (``.json``, ``.csv`` or ``.npz``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from overtensor._io import check_output_path


def add_parser(sub) -> None:
    """Register ``overtensor moments`` and its subcommands on an argparse subparsers object."""
    p = sub.add_parser("moments", help="learn a mixture or topic model from the moments of data")
    msub = p.add_subparsers(dest="moments_command", required=True)
    for name, text in (("gmm", "spherical Gaussian mixture from samples (rows of X)"),
                       ("topics", "single-topic model from a document-word count matrix")):
        q = msub.add_parser(name, help=text)
        q.add_argument("data", help="CSV (comma-separated; an optional header line), .txt, .npy "
                                    "or .npz file")
        q.add_argument("--components", "--topics", "-k", dest="components", type=int,
                       required=True, help="number of components (topics)")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        q.add_argument("-o", "--output", default=None,
                       help="write the parameters to a .json, .csv or .npz file")
        q.set_defaults(func=_cmd_moments, kind=name)
    q = msub.add_parser("lda", help="latent Dirichlet allocation (known concentration alpha0) from "
                                    "a document-word count matrix")
    q.add_argument("data", help="count matrix: CSV, .txt, .npy or .npz file")
    q.add_argument("--topics", "--components", "-k", dest="components", type=int, required=True,
                   help="number of topics")
    q.add_argument("--alpha0", type=float, default=1.0,
                   help="Dirichlet concentration sum(alpha) (default 1; 0 = single-topic model: "
                        "alpha is then all zeros and weight is the topic probability)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("-o", "--output", default=None,
                   help="write the parameters to a .json, .csv or .npz file")
    q.set_defaults(func=_cmd_moments, kind="lda")


#: Suffixes ``-o`` knows (checked by :func:`overtensor._io.check_output_path`, as for ``fit -o``).
OUTPUT_SUFFIXES = (".json", ".csv", ".npz")


def load_matrix(path: str) -> np.ndarray:
    """A 2-D float array from ``.npy``, ``.npz``, CSV or text (the reader of ``overtensor fit``,
    :func:`overtensor.cli.userdata.read_array`: a non-numeric first line is a header, a ragged row is
    an error)."""
    from overtensor.cli.userdata import read_array

    X = read_array(path, "data file")
    if X.ndim != 2:
        raise ValueError(f"data file {path}: must hold a 2-D array, got shape {X.shape}")
    return X


def csv_table(kind: str, arrays: dict[str, np.ndarray], out: dict[str, Any]
              ) -> tuple[list[str], np.ndarray]:
    """Column names and rows (one per component) of the ``-o .csv`` file.

    ``gmm``: ``weight,variance,x_0,...`` (the mean; the spherical variance repeated on each row);
    ``lda``: ``weight,alpha,word_0,...``; ``topics``: ``weight,word_0,...``.
    """
    weights = arrays["weights"]
    if kind == "gmm":
        body = arrays["means"]
        first = {"weight": weights, "variance": np.full(len(weights), out["covariance"])}
        prefix = "x"
    else:
        body = arrays["topic_word"]
        first = {"weight": weights, **({"alpha": arrays["alpha"]} if kind == "lda" else {})}
        prefix = "word"
    names = [*first, *(f"{prefix}_{i}" for i in range(body.shape[1]))]
    return names, np.column_stack([*first.values(), body])


def _check_estimates(kind: str, arrays: dict[str, np.ndarray], out: dict[str, Any]) -> None:
    """Refuse estimates holding NaN or inf, or topics that are no distribution (a zero row),
    with :class:`~overtensor.cli.userdata.NonFiniteResult` (exit code 5): nothing is printed
    or written."""
    from overtensor.cli.userdata import NonFiniteResult

    bad = [k for k, a in arrays.items() if not np.isfinite(np.asarray(a, dtype=float)).all()]
    bad += [k for k in ("loglik", "whitened_error")
            if isinstance(out.get(k), float) and not np.isfinite(out[k])]
    if bad:
        raise NonFiniteResult(f"moments {kind}: the estimate holds NaN or inf ({', '.join(bad)}); "
                              "nothing written: check the data's scale and -k")
    if "topic_word" in arrays:
        sums = np.asarray(arrays["topic_word"]).sum(axis=1)
        if (sums <= 0).any():
            j = int(np.nonzero(sums <= 0)[0][0])
            raise NonFiniteResult(f"moments {kind}: topic {j} is all zeros, not a distribution; "
                                  "nothing written: try fewer topics (-k)")


def _cmd_moments(args) -> int:
    from overtensor._io import atomic_write
    from overtensor.moments import GaussianMixture, SingleTopicModel, SpectralLDA

    path = check_output_path(args.output, OUTPUT_SUFFIXES) if args.output else None  # before any work
    X = load_matrix(args.data)
    out: dict[str, Any]
    if args.kind == "gmm":
        model = GaussianMixture(args.components, random_state=args.seed).fit(X)
        out = {"model": "spherical-gmm", "n_samples": X.shape[0], "n_features": X.shape[1],
               "weights": model.weights_.tolist(), "means": model.means_.tolist(),
               "covariance": model.covariance_, "loglik": model.score(X),
               "whitened_error": model.whitened_error_}
        arrays = {"weights": model.weights_, "means": model.means_,
                  "covariance": np.asarray(model.covariance_)}
    elif args.kind == "lda":
        model = SpectralLDA(args.components, args.alpha0, random_state=args.seed).fit(X)
        out = {"model": "lda", "n_documents": X.shape[0], "n_words": X.shape[1],
               "alpha0": args.alpha0, "weights": model.weights_.tolist(),
               "alpha": model.alpha_.tolist(), "topic_word": model.topic_word_.tolist(),
               "whitened_error": model.whitened_error_}
        arrays = {"weights": model.weights_, "alpha": model.alpha_,
                  "topic_word": model.topic_word_}
    else:
        model = SingleTopicModel(args.components, random_state=args.seed).fit(X)
        out = {"model": "single-topic", "n_documents": X.shape[0], "n_words": X.shape[1],
               "weights": model.weights_.tolist(), "topic_word": model.topic_word_.tolist(),
               "whitened_error": model.whitened_error_}
        arrays = {"weights": model.weights_, "topic_word": model.topic_word_}
    _check_estimates(args.kind, arrays, out)  # never print or write NaN/inf with exit 0
    if path is not None:
        if path.suffix.lower() == ".npz":
            def write_npz(tmp: Path) -> None:
                with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to ".NPZ"
                    np.savez(fh, **arrays)

            atomic_write(path, write_npz)
        elif path.suffix.lower() == ".csv":
            names, rows = csv_table(args.kind, arrays, out)
            atomic_write(path, lambda tmp: np.savetxt(tmp, rows, delimiter=",",
                                                      header=",".join(names), comments=""))
        else:
            atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(out)))
    if args.json:
        print(json.dumps(out))
    else:
        from rich.console import Console
        from rich.table import Table

        key = "means" if args.kind == "gmm" else "topic_word"
        lda = args.kind == "lda"
        table = Table(title=f"overtensor moments {args.kind}")
        table.add_column("topic" if args.kind != "gmm" else "component")
        if lda:
            table.add_column("alpha")
        table.add_column("weight (alpha/alpha0)" if lda and args.alpha0 > 0 else "weight")
        table.add_column(key + " (first 6 entries)")
        for j, w in enumerate(out["weights"]):
            cells = [f"{out['alpha'][j]:.4g}"] if lda else []
            table.add_row(str(j), *cells, f"{w:.4f}",
                          " ".join(f"{v:.3g}" for v in out[key][j][:6]))
        Console().print(table)
        extra = {k: v for k, v in out.items() if not isinstance(v, list)}
        Console().print_json(json.dumps(extra))
    return 0
