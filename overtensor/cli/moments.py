"""``overtensor moments gmm|topics|lda``: method-of-moments estimators from the command line.

A thin layer over :class:`overtensor.moments.GaussianMixture`,
:class:`overtensor.moments.SingleTopicModel` and :class:`overtensor.moments.SpectralLDA`: read a
CSV, NPY or NPZ file (topic models also a ``scipy.sparse.save_npz`` file, and a vocabulary with
``--vocab``), fit, print the parameters (a readable table: per-component variances and sizes for
``gmm``, top words for the topic models; or one JSON object with ``--json``) and optionally write
them to ``-o`` (``.json``, ``.csv`` or ``.npz``) and the mixture's labels to ``--labels``.
"""

from __future__ import annotations

import contextlib
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
                                    "or .npz file" + ("; counts may also be a scipy.sparse "
                                                      "save_npz file" if name == "topics" else ""))
        # --topics counts topics, so only the topic models take it (a flag means one thing)
        q.add_argument("-k", "--n-components", *(("--topics",) if name == "topics" else ()),
                       dest="components", type=int, required=True,
                       help="number of topics: the estimator's n_components" if name == "topics" else
                       "number of mixture components: the estimator's n_components")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        q.add_argument("-o", "--output", default=None,
                       help="write the parameters to a .json, .csv or .npz file")
        if name == "gmm":
            q.add_argument("--covariance-type", choices=("spherical", "tied-spherical"),
                           default="spherical",
                           help="one variance per component (default; Hsu & Kakade 2013) or one "
                                "shared variance")
            q.add_argument("--labels", default=None, metavar="FILE.csv",
                           help="write every sample's component (one 'label' column, rows in "
                                "the data's order) to this CSV file")
        else:
            _topic_options(q)
        q.set_defaults(func=_cmd_moments, kind=name)
    q = msub.add_parser("lda", help="latent Dirichlet allocation (known concentration alpha0) from "
                                    "a document-word count matrix")
    q.add_argument("data", help="count matrix: CSV, .txt, .npy, .npz or a scipy.sparse save_npz "
                                "file")
    q.add_argument("-k", "--n-components", "--topics", dest="components", type=int, required=True,
                   help="number of topics: the estimator's n_components")
    q.add_argument("--alpha0", type=float, default=1.0,
                   help="Dirichlet concentration sum(alpha) (default 1; 0 = single-topic model: "
                        "alpha is then all zeros and weight is the topic probability)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("-o", "--output", default=None,
                   help="write the parameters to a .json, .csv or .npz file")
    _topic_options(q)
    q.set_defaults(func=_cmd_moments, kind="lda")


def _topic_options(q) -> None:
    q.add_argument("--vocab", default=None, metavar="FILE",
                   help="the vocabulary: one word per line, one line per column of the counts "
                        "(the table then shows each topic's top words)")
    q.add_argument("--min-words", type=float, default=None, metavar="N",
                   help="drop documents with fewer than N words (N >= 3) and report how many; "
                        "default: a document with fewer than 3 words is an error")
    q.add_argument("--top", type=int, default=8, help="top words shown per topic (default 8)")


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


#: The members of a ``scipy.sparse.save_npz`` file (a CSR/CSC/COO matrix).
_SPARSE_NPZ_KEYS = {"format", "shape"}


def load_counts(path: str) -> Any:
    """A count matrix: a ``scipy.sparse.save_npz`` file (kept sparse), else :func:`load_matrix`.

    Raises
    ------
    ValueError
        ``"data file {path}: ..."`` for an unreadable sparse file or non-finite entries.
    """
    import scipy.sparse as sp

    if Path(path).suffix.lower() == ".npz" and Path(path).is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                sparse = _SPARSE_NPZ_KEYS <= set(npz.files)
            if sparse:
                C = sp.load_npz(path).tocsr()
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"data file {path}: {exc}") from None
        if sparse:
            if C.ndim != 2 or not np.issubdtype(C.dtype, np.number) or np.iscomplexobj(C.data):
                raise ValueError(f"data file {path}: expected a real 2-D sparse matrix, got dtype "
                                 f"{C.dtype}")
            if not np.isfinite(C.data).all():
                raise ValueError(f"data file {path}: contains NaN or inf")
            return C
    return load_matrix(path)


def load_vocabulary(path: str, n_words: int) -> list[str]:
    """One word per line of ``path`` (blank lines kept as empty words would shift the columns, so
    every line counts); ``n_words`` lines expected.

    Raises
    ------
    FileNotFoundError
        ``--vocab``: no such file.
    ValueError
        When the number of lines is not ``n_words``.
    """
    import errno

    try:
        words = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "--vocab: no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--vocab {path}: {exc}") from None
    if len(words) != n_words:
        raise ValueError(f"--vocab {path}: has {len(words)} lines, the counts have {n_words} "
                         "columns (one word per line, one line per column)")
    return [w.strip() for w in words]


def check_labels_path(output: str) -> Path:
    """The ``--labels`` path, checked before any work (a ``.csv`` file in an existing folder)."""
    import errno

    path = Path(output)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "--labels must be a file path, got a directory", output)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--labels {output}: must be a .csv file, got {path.suffix or '(none)'!r}")
    if not path.resolve().parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "--labels: no such folder (create it first)",
                                str(path.parent))
    return path


def csv_table(kind: str, arrays: dict[str, np.ndarray], out: dict[str, Any]
              ) -> tuple[list[str], np.ndarray]:
    """Column names and rows (one per component) of the ``-o .csv`` file.

    ``gmm``: ``weight,variance,x_0,...`` (the mean and the component's variance ``σ_i²``;
    equal on every row under ``--covariance-type tied-spherical``);
    ``lda``: ``weight,alpha,word_0,...``; ``topics``: ``weight,word_0,...``.
    """
    weights = arrays["weights"]
    if kind == "gmm":
        body = arrays["means"]
        first = {"weight": weights, "variance": arrays["variances"]}
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
    path = check_output_path(args.output, OUTPUT_SUFFIXES) if args.output else None  # before any work
    labels_path = check_labels_path(args.labels) if getattr(args, "labels", None) else None
    if not args.components >= 1:  # the option the user typed, not the estimator's parameter name
        raise ValueError(f"-k/--n-components must be >= 1, got {args.components}")
    if getattr(args, "min_words", None) is not None and not args.min_words >= 3:
        raise ValueError(f"--min-words must be >= 3 (the third moment needs 3 words per "
                         f"document), got {args.min_words:g}")
    X = load_matrix(args.data) if args.kind == "gmm" else load_counts(args.data)
    with _k_named_as_typed("-k/--n-components" if args.kind == "gmm" else "-k/--topics"):
        return _fit_and_report(args, X, path, labels_path)


@contextlib.contextmanager
def _k_named_as_typed(option: str):
    """The estimators' errors about ``n_components``/``n_topics`` (``k`` against the data's
    dimension, known only once the file is read) name the command's option instead."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        for name in ("n_components ", "n_topics "):  # GaussianMixture/SingleTopicModel, SpectralLDA
            if text.startswith(name):
                raise ValueError(f"{option} {text.removeprefix(name)}") from None
        raise


def _fit_and_report(args, X, path, labels_path) -> int:
    from overtensor._io import atomic_write
    from overtensor.moments import GaussianMixture, SingleTopicModel, SpectralLDA

    out: dict[str, Any]
    if args.kind == "gmm":
        model = GaussianMixture(args.components, covariance_type=args.covariance_type,
                                random_state=args.seed).fit(X)
        labels = model.predict(X)
        out = {"model": f"{args.covariance_type}-gmm", "n_samples": X.shape[0],
               "n_features": X.shape[1], "weights": model.weights_.tolist(),
               "means": model.means_.tolist(), "variances": model.covariances_.tolist(),
               "pooled_variance": model.covariance_, "loglik": model.score(X),
               "bic": model.bic(X), "sizes": np.bincount(labels, minlength=args.components).tolist(),
               "whitened_error": model.whitened_error_}
        arrays = {"weights": model.weights_, "means": model.means_,
                  "variances": model.covariances_, "pooled_variance": np.asarray(model.covariance_),
                  "labels": labels}
    else:
        vocabulary = load_vocabulary(args.vocab, X.shape[1]) if args.vocab else None
        if args.kind == "lda":
            model = SpectralLDA(args.components, args.alpha0, min_words=args.min_words,
                                random_state=args.seed).fit(X, vocabulary=vocabulary)
            out = {"model": "lda", "alpha0": args.alpha0, "alpha": model.alpha_.tolist()}
        else:
            model = SingleTopicModel(args.components, min_words=args.min_words,
                                     random_state=args.seed).fit(X, vocabulary=vocabulary)
            out = {"model": "single-topic"}
        out.update({"n_documents": X.shape[0], "n_documents_dropped": model.n_documents_dropped_,
                    "n_words": X.shape[1], "weights": model.weights_.tolist(),
                    "topic_word": model.topic_word_.tolist(),
                    "top_words": model.top_words(args.top),
                    "whitened_error": model.whitened_error_})
        arrays = {"weights": model.weights_, "topic_word": model.topic_word_,
                  **({"alpha": model.alpha_} if args.kind == "lda" else {})}
    _check_estimates(args.kind, arrays, out)  # never print or write NaN/inf with exit 0
    if labels_path is not None:
        atomic_write(labels_path, lambda tmp: np.savetxt(tmp, arrays["labels"], fmt="%d",
                                                         header="label", comments=""))
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
        _print_table(args, out)
    return 0


def _print_table(args, out: dict[str, Any]) -> None:
    """The readable table: one row per component (topic), then the scalar results."""
    from rich.console import Console
    from rich.table import Table

    gmm, lda = args.kind == "gmm", args.kind == "lda"
    table = Table(title=f"overtensor moments {args.kind}")
    table.add_column("component" if gmm else "topic")
    if lda:
        table.add_column("alpha")
    table.add_column("weight (alpha/alpha0)" if lda and args.alpha0 > 0 else "weight")
    if gmm:
        table.add_column("variance")
        table.add_column("samples")
        table.add_column("mean (first 6 entries)")
    else:
        table.add_column("top words")
    for j, w in enumerate(out["weights"]):
        cells = [f"{out['alpha'][j]:.4g}"] if lda else []
        if gmm:
            cells += [f"{w:.4f}", f"{out['variances'][j]:.4g}", str(out["sizes"][j]),
                      " ".join(f"{v:.3g}" for v in out["means"][j][:6])]
        else:
            cells += [f"{w:.4f}", " ".join(out["top_words"][j])]
        table.add_row(str(j), *cells)
    Console().print(table)
    extra = {k: v for k, v in out.items() if not isinstance(v, list)}
    Console().print_json(json.dumps(extra))
