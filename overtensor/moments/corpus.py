"""A real text corpus that ships with an installed package, and how topic models are scored on it.

**Corpus** (:func:`scipy_docstrings`): the docstrings of the public functions and classes of a
fixed list of SciPy subpackages (:data:`SCIPY_MODULES`), one document per object (an object
exported by two subpackages counts once, under the first), cut before its ``Examples`` /
``References`` section (code and citations) and without a leading call signature (ufuncs
start with ``name(x, /, out=None, *, casting=..., subok=...)``). Nothing is downloaded: SciPy is
a dependency, and its docstrings are real technical prose (median 78 counted words per document)
with a known coarse label per document (the subpackage); scikit-learn ships no text corpus
offline. The corpus depends on the installed SciPy version (recorded by :func:`corpus_counts`).

**Counts** (:func:`corpus_counts`): scikit-learn's ``CountVectorizer`` with its English stop
words, words of 3+ letters, ``min_df=5`` documents, ``max_df=0.3`` (drops the numpydoc
boilerplate shared by most docstrings: "parameters", "returns", "array", …); documents with fewer
than 3 counted words are dropped.

**Scores**:

* :func:`completion_log_likelihood` — *document completion* (Wallach, Murray, Salakhutdinov,
  Mimno 2009, §4.3): every held-out document's words are split at random into an observed half
  and a hidden half; the topic mixture is inferred from the observed half and the hidden words
  are scored under it, in nats per word. Topic-word rows are smoothed towards the training
  unigram, ``(1 − η) μ_h + η u`` with a fixed ``η = 0.05`` (clipped moment estimates have exact
  zeros); the baseline is the add-one unigram ``u`` itself.
* :func:`npmi_coherence` — mean normalized pointwise mutual information of the top-10 words of
  each topic over document co-occurrence in the corpus (Bouma 2009; Lau, Newman, Baldwin 2014),
  in ``[−1, 1]``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from overtensor._checks import check_float, check_int, make_generator

SCIPY_MODULES = ("cluster.hierarchy", "cluster.vq", "fft", "integrate", "interpolate", "io",
                 "linalg", "ndimage", "optimize", "signal", "sparse", "sparse.csgraph",
                 "sparse.linalg", "spatial", "special", "stats")
SMOOTHING = 0.05
_CUT = re.compile(r"\n(?:Examples|References)\n-+\n")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*$")  # a ufunc's call signature (casting=, subok=, …)


def scipy_docstrings(modules: tuple[str, ...] = SCIPY_MODULES) -> tuple[list[str], list[str]]:
    """Docstrings of the public callables of ``scipy.<module>`` for each module, and the module
    of each (``(documents, labels)``, deterministic order: modules as given, names sorted).

    Raises
    ------
    ValueError
        A name of ``modules`` not in :data:`SCIPY_MODULES` (before anything is imported).
    """
    # Only names of the fixed table are ever imported: a name from elsewhere (a spec, a file)
    # never reaches import_module.
    for name in modules:
        if name not in SCIPY_MODULES:
            raise ValueError(f"modules must be names from SCIPY_MODULES {SCIPY_MODULES}, "
                             f"got {name!r}")
    docs, labels, seen = [], [], set()
    for name in modules:
        mod = importlib.import_module(f"scipy.{name}")
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for attr in sorted(names):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj) or id(obj) in seen:
                continue
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            seen.add(id(obj))
            lines = _CUT.split(doc)[0].splitlines()
            if lines and _SIGNATURE.match(lines[0]):
                lines = lines[1:]
            docs.append("\n".join(lines))
            labels.append(name)
    return docs, labels


@dataclass(frozen=True)
class Corpus:
    """A document–word count matrix with its vocabulary and document labels.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix ``(n_documents, V)``
    vocabulary : ndarray ``(V,)`` of str
    labels : ndarray ``(n_documents,)`` of str
    source : str
        What the documents are (with the package version).
    """

    counts: sp.csr_matrix
    vocabulary: np.ndarray
    labels: np.ndarray
    source: str


def corpus_counts(docs: list[str] | None = None, labels: list[str] | None = None, *,
                  min_df: int = 5, max_df: float = 0.3) -> Corpus:
    """Counts of :func:`scipy_docstrings` (or of ``docs``) by ``CountVectorizer`` (module doc)."""
    import scipy
    from sklearn.feature_extraction.text import CountVectorizer

    source = "given documents"
    if docs is None:
        docs, labels = scipy_docstrings()
        source = f"docstrings of scipy {scipy.__version__} ({', '.join(SCIPY_MODULES)})"
    labels = list(labels) if labels is not None else [""] * len(docs)
    cv = CountVectorizer(stop_words="english", min_df=min_df, max_df=max_df,
                         token_pattern=r"(?u)\b[a-zA-Z]{3,}\b")
    X = cv.fit_transform(docs).tocsr().astype(np.float64)
    keep = np.asarray(X.sum(axis=1)).ravel() >= 3
    return Corpus(X[keep], cv.get_feature_names_out(), np.asarray(labels)[keep], source)


def split_documents(n: int, test_fraction: float, random_state: Any = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / test indices of ``n`` documents."""
    import torch

    test_fraction = check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0)
    perm = torch.randperm(n, generator=make_generator(random_state)).numpy()
    n_test = round(test_fraction * n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def split_words(C: sp.csr_matrix, random_state: Any = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Each document's words split at random into two halves (binomial with p = ½ per word
    occurrence): ``(observed, hidden)`` count matrices that add up to ``C``."""
    import torch

    C = sp.csr_matrix(C)
    gen = make_generator(random_state)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    obs = C.copy()
    obs.data = np.random.default_rng(seed).binomial(C.data.astype(np.int64), 0.5).astype(np.float64)
    return obs, C - obs


def unigram(C: sp.csr_matrix) -> np.ndarray:
    """Add-one word frequencies of ``C``, ``(V,)``."""
    f = np.asarray(C.sum(axis=0)).ravel() + 1.0
    return f / f.sum()


def completion_log_likelihood(observed: sp.csr_matrix, hidden: sp.csr_matrix,
                              topic_word: np.ndarray | None, background: np.ndarray, *,
                              model: str = "lda", weights: np.ndarray | None = None,
                              alpha: np.ndarray | None = None, n_iter: int = 100) -> float:
    """Nats per hidden word of document completion (module docstring).

    ``model="unigram"`` scores the hidden words under ``background``; ``"single-topic"`` under
    ``Σ_h P(h | observed) μ̃_h`` (one topic per document, prior ``weights``); ``"lda"`` under
    ``θ μ̃`` with ``θ`` the proportions of the observed half
    (:func:`overtensor.moments.lda.proportions`, prior ``alpha``).
    """
    from overtensor.moments.lda import proportions

    hidden = sp.csr_matrix(hidden)
    total = hidden.sum()
    if model == "unigram":
        return float(np.asarray(hidden @ np.log(background)).sum() / total)
    mu = (1 - SMOOTHING) * np.asarray(topic_word) + SMOOTHING * background[None, :]
    if model == "single-topic":
        logp = np.asarray(sp.csr_matrix(observed) @ np.log(mu).T) + np.log(np.clip(weights, 1e-300,
                                                                                   None))
        logp -= logp.max(axis=1, keepdims=True)
        theta = np.exp(logp)
        theta /= theta.sum(axis=1, keepdims=True)
    elif model == "lda":
        theta = proportions(sp.csr_matrix(observed), mu, np.asarray(alpha, dtype=np.float64), n_iter)
    else:
        raise ValueError(f"model must be 'unigram', 'single-topic' or 'lda', got {model!r}")
    pred = theta @ mu  # (n, V)
    Hc = hidden.tocoo()
    return float((Hc.data * np.log(pred[Hc.row, Hc.col])).sum() / total)


def npmi_coherence(C: sp.csr_matrix, topic_word: np.ndarray, top: int = 10) -> np.ndarray:
    """Mean NPMI of the ``top`` words of each topic over document co-occurrence in ``C``,
    ``(k,)``. A pair never seen together scores −1."""
    top = check_int("top", top, 2)
    B = (sp.csr_matrix(C) > 0).astype(np.float64)
    n = B.shape[0]
    out = []
    for row in np.asarray(topic_word):
        idx = np.argsort(row)[::-1][:top]
        Bi = B[:, idx].toarray()
        p = Bi.mean(0)
        joint = (Bi.T @ Bi) / n
        vals = []
        for a in range(top):
            for b in range(a + 1, top):
                if joint[a, b] == 0:
                    vals.append(-1.0)
                elif joint[a, b] == 1:
                    vals.append(1.0)
                else:
                    pmi = np.log(joint[a, b] / (p[a] * p[b]))
                    vals.append(pmi / -np.log(joint[a, b]))
        out.append(float(np.mean(vals)))
    return np.asarray(out)


def top_words(topic_word: np.ndarray, vocabulary: np.ndarray, top: int = 8) -> list[list[str]]:
    """The ``top`` most probable words of each topic."""
    return [list(vocabulary[np.argsort(row)[::-1][:top]]) for row in np.asarray(topic_word)]
