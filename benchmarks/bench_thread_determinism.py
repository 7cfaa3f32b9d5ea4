"""How much do the method-of-moments estimators change with the number of torch threads?
(issue 23, item 11). Prints, for GaussianMixture and SingleTopicModel, the largest absolute
difference of the fitted parameters between 1 thread and N threads, same data, same seed.

    OMP_NUM_THREADS=2 python benchmarks/bench_thread_determinism.py --threads 2

Threads change the order of floating-point sums in the BLAS products the moments are made of,
so results agree to rounding, not bit for bit; this measures the size of that rounding.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from overtensor.moments import GaussianMixture, SingleTopicModel


def gmm_data(seed: int, n: int, d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = 3 * rng.normal(size=(k, d)) / np.sqrt(d)
    z = rng.integers(k, size=n)
    return means[z] + 0.3 * rng.normal(size=(n, d))


def topic_data(seed: int, n: int, vocab: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(vocab, 0.1), size=k)
    z = rng.integers(k, size=n)
    return np.stack([rng.multinomial(30, topics[j]) for j in z]).astype(float)


def fitted(kind: str, data: np.ndarray, k: int, threads: int) -> dict[str, np.ndarray]:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if kind == "gmm":
            m = GaussianMixture(k, random_state=0).fit(data)
            return {"weights": m.weights_, "means": m.means_,
                    "covariance": np.asarray([m.covariance_])}
        m = SingleTopicModel(k, random_state=0).fit(data)
        return {"weights": m.weights_, "topic_word": m.topic_word_}
    finally:
        torch.set_num_threads(old)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    cases = [("gmm", lambda s: gmm_data(s, 20000, 50, 5), 5),
             ("topics", lambda s: topic_data(s, 5000, 200, 5), 5)]
    for kind, make, k in cases:
        worst: dict[str, float] = {}
        for seed in range(args.seeds):
            data = make(seed)
            one, many = fitted(kind, data, k, 1), fitted(kind, data, k, args.threads)
            for key in one:
                diff = float(np.max(np.abs(one[key] - many[key])))
                worst[key] = max(worst.get(key, 0.0), diff)
        print(f"{kind}: max |1 thread - {args.threads} threads| over {args.seeds} seeds: "
              + ", ".join(f"{key} {v:.2e}" for key, v in worst.items()))


if __name__ == "__main__":
    main()
