"""Runs of the ``topics`` preset of ``method-of-moments``: topic models on a real corpus.

Corpus: the docstrings of SciPy's public functions (:mod:`overtensor.moments.corpus`; shipped with
the installed SciPy, nothing downloaded). Each seed draws its own 80 / 20 split of the documents
and its own observed / hidden split of the test documents' words. Methods:

* ``unigram`` — add-one word frequencies of the training documents (the baseline);
* ``single-topic`` — :class:`overtensor.moments.SingleTopicModel`;
* ``spectral-lda`` — :class:`overtensor.moments.SpectralLDA` with the run's ``alpha0``;
* ``sklearn-lda`` — scikit-learn's variational-Bayes ``LatentDirichletAllocation`` (batch),
  the likelihood method, as EM is for mixtures.

Metrics: ``heldout_loglik`` (document completion, nats per hidden word), ``npmi`` (mean top-10
NPMI over topics, on the whole corpus), ``seconds`` (fit only), ``top_words`` (8 per topic).
"""

from __future__ import annotations

import functools
import time
from typing import Any, ClassVar, Literal

import numpy as np

from overtensor.experiments.params import NonNegativeFloat, PositiveInt, RunParams
from overtensor.experiments.registry import register_run

TOPIC_METHODS = ("unigram", "single-topic", "spectral-lda", "sklearn-lda")


@functools.lru_cache(maxsize=1)
def _corpus():
    from overtensor.moments.corpus import corpus_counts

    return corpus_counts()


class MethodOfMomentsTopicsParams(RunParams):
    """Config of a topic-model run on the SciPy docstring corpus."""

    dataset: Literal["scipy-docs"] = "scipy-docs"
    method: Literal["unigram", "single-topic", "spectral-lda", "sklearn-lda"] = "spectral-lda"
    topics: PositiveInt = 10
    alpha0: NonNegativeFloat = 0.1

    #: The unigram baseline has no topics; only spectral LDA takes a concentration alpha0 (a spec
    #: setting them for no run that uses them is refused: they would be recorded, unused).
    USED_ONLY_WITH: ClassVar[dict[str, tuple[str, tuple[Any, ...]]]] = {
        "topics": ("method", ("single-topic", "spectral-lda", "sklearn-lda")),
        "alpha0": ("method", ("spectral-lda",)),
    }


@register_run("method-of-moments-topics", params=MethodOfMomentsTopicsParams, metrics=(
    "heldout_loglik", "npmi", "seconds", "top_words", "n_documents", "n_words"))
def run_topics(config: dict[str, Any]) -> dict[str, Any]:
    """One topic model on the corpus. Config: ``method``, ``topics``, ``alpha0``, ``seed``."""
    from overtensor.moments import SingleTopicModel, SpectralLDA
    from overtensor.moments import corpus as cp

    method, seed = config.get("method", "spectral-lda"), int(config.get("seed", 0))
    k, alpha0 = int(config.get("topics", 10)), float(config.get("alpha0", 0.1))
    if method not in TOPIC_METHODS:
        raise ValueError(f"method must be one of {list(TOPIC_METHODS)}, got {method!r}")
    corpus = _corpus()
    train, test = cp.split_documents(corpus.counts.shape[0], 0.2, random_state=seed)
    Ctr, Cte = corpus.counts[train], corpus.counts[test]
    observed, hidden = cp.split_words(Cte, random_state=seed)
    background = cp.unigram(Ctr)
    out: dict[str, Any] = {"heldout_loglik": None, "npmi": None, "seconds": None,
                           "top_words": "", "n_documents": int(corpus.counts.shape[0]),
                           "n_words": int(corpus.counts.shape[1])}
    if method == "unigram":
        out["heldout_loglik"] = cp.completion_log_likelihood(observed, hidden, None, background,
                                                             model="unigram")
        return out
    t0 = time.perf_counter()
    if method == "single-topic":
        model = SingleTopicModel(k, random_state=seed).fit(Ctr)
        topic_word, kw = model.topic_word_, {"model": "single-topic", "weights": model.weights_}
    elif method == "spectral-lda":
        model = SpectralLDA(k, alpha0, random_state=seed).fit(Ctr)
        topic_word, kw = model.topic_word_, {"model": "lda", "alpha": model.alpha_}
    else:
        from sklearn.decomposition import LatentDirichletAllocation

        model = LatentDirichletAllocation(k, learning_method="batch", random_state=seed).fit(Ctr)
        topic_word = model.components_ / model.components_.sum(1, keepdims=True)
        kw = {"model": "lda", "alpha": np.full(k, model.doc_topic_prior_)}
    out["seconds"] = time.perf_counter() - t0
    out["heldout_loglik"] = cp.completion_log_likelihood(observed, hidden, topic_word, background,
                                                         **kw)
    out["npmi"] = float(cp.npmi_coherence(corpus.counts, topic_word).mean())
    out["top_words"] = " | ".join(" ".join(w) for w in cp.top_words(topic_word, corpus.vocabulary))
    return out
