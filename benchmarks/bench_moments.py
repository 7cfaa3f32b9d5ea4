"""Method of moments on spherical Gaussian mixtures: overtensor against the power method, TensorLy's
ALS and scikit-learn's EM; and a large streamed mixture where no d³ array can be formed.

Default run (5 seeds): ``d = 20``, ``k = 4``, ``n = 50 000``, unit-norm random means scaled to norm
2, equal weights, ``σ = 0.5``. The three tensor methods decompose the *same* whitened third moment
(:func:`overtensor.moments.mixture.whitened_third_moment`); their means are unwhitened alike.
Mean error: the largest Euclidean distance between a true mean and its Hungarian-matched estimate.
EM: ``sklearn.mixture.GaussianMixture(covariance_type="spherical")`` with ``n_init`` 1 and 10, and
EM started from overtensor's estimate (``GaussianMixture.to_sklearn``; its time includes ours).

``--large``: ``d = 10 000``, ``k = 10``, ``n = 10⁶`` samples streamed in float32 chunks
(:class:`~overtensor.moments.SphericalMixtureStream`, σ = 0.25, unit-norm means), randomized
whitening; prints the time of every pass, the number of passes over the data, the recovery
(``|cos|`` of matched means) and the peak resident memory (the dense third moment would take
8 TB). ``--threads 2`` for both cores.

``--real``: the bundled iris, wine and digits, ``GaussianMixture`` with per-component variances
(``"spherical"``, the default) and with one shared variance (``"tied-spherical"``) against
scikit-learn's spherical EM: clustering accuracy (Hungarian matching) and adjusted Rand index,
mean ± sd over the seeds. Two preprocessings: the features as shipped (``raw``; constant
columns dropped) and standardized (``centred``, as the ``method-of-moments`` experiment loads
them; centring makes the means linearly dependent, which the moment method excludes).

``--hsu-kakade``: the configuration of Hsu & Kakade (2013): ``d = 10``, ``k = 3``, means
``4e₁, 4e₂, 4e₃``, weights (0.3, 0.3, 0.4), σ = (0.5, 1, 2), ``n = 30 000``; worst mean error,
weight error and σ per seed for both covariance types and EM.

    python benchmarks/bench_moments.py            # small, 5 seeds
    python benchmarks/bench_moments.py --large    # d = 10 000 streamed (several minutes)
    python benchmarks/bench_moments.py --real     # iris, wine, digits (about a minute)
    python benchmarks/bench_moments.py --hsu-kakade
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch
from _common import print_machine, print_table, write_csv
from scipy.optimize import linear_sum_assignment

import overtensor as ot
from overtensor.experiments.method_of_moments import symmetric_from_parafac, tie_tolerance
from overtensor.moments import GaussianMixture, SphericalMixtureStream, best_rank_cp
from overtensor.moments.mixture import mixture_parameters, spherical_mixture_moments


def mean_error(est: np.ndarray, truth: np.ndarray) -> float:
    D = np.linalg.norm(est[:, None] - truth[None], axis=-1)
    r, c = linear_sum_assignment(D)
    return float(D[r, c].max())


def matched_cos(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    a = est / np.linalg.norm(est, axis=1, keepdims=True)
    b = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    C = a @ b.T
    r, c = linear_sum_assignment(-C)
    return C[r, c]


def planted(d: int, k: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    M = torch.randn(k, d, generator=g, dtype=torch.float64)
    return scale * M / M.norm(dim=1, keepdim=True)


def small(n_seeds: int) -> list[dict]:
    from sklearn.mixture import GaussianMixture as SkGM
    from tensorly.decomposition import parafac

    d, k, n, sigma = 20, 4, 50_000, 0.5
    runs = []
    for seed in range(n_seeds):
        M = planted(d, k, 2.0, seed)
        src = SphericalMixtureStream(M, torch.full((k,), 1 / k), sigma, n, seed=seed)
        X = torch.cat(list(src.chunks())).numpy()
        truth = M.numpy()

        t0 = time.perf_counter()
        # The shared-variance model, whose whitened T the classical decompositions below share.
        gm = GaussianMixture(k, covariance_type="tied-spherical", random_state=seed).fit(X)
        t_ot = time.perf_counter() - t0
        runs.append(dict(method="overtensor", seed=seed, mean_error=mean_error(gm.means_, truth),
                         loglik=gm.score(X), seconds=t_ot))

        # The same whitening and whitened tensor for the classical decompositions.
        mom = spherical_mixture_moments(src, k)
        T = mom.tensor

        # The jointly best rank-k CP alone (power-method start, L-BFGS, LM polish), no likelihood
        # selection: the estimator the "same whitened tensor" comparison is about.
        dec = best_rank_cp(T, k, random_state=seed)
        means, _ = mixture_parameters(dec.cp.weights, dec.cp.components, mom.whitening)
        runs.append(dict(method="best rank-k CP (same whitened T)", seed=seed,
                         mean_error=mean_error(means.numpy(), truth), seconds=float("nan")))

        t0 = time.perf_counter()
        cp = ot.fit(ot.DenseTarget(T), k, method="power-method", random_state=seed).cp
        t_pm = time.perf_counter() - t0
        means, _ = mixture_parameters(cp.weights, cp.components, mom.whitening)
        runs.append(dict(method="power-method (same whitened T)", seed=seed,
                         mean_error=mean_error(means.numpy(), truth), seconds=t_pm))

        t0 = time.perf_counter()
        lam, V = symmetric_from_parafac(parafac(T.numpy(), k, init="random", random_state=seed,
                                                n_iter_max=1000, tol=1e-12))
        t_als = time.perf_counter() - t0
        means, _ = mixture_parameters(lam, V, mom.whitening)
        runs.append(dict(method="tensorly-parafac (same whitened T)", seed=seed,
                         mean_error=mean_error(means.numpy(), truth), seconds=t_als))

        for n_init in (1, 10):
            t0 = time.perf_counter()
            em = SkGM(k, covariance_type="spherical", n_init=n_init, random_state=seed).fit(X)
            runs.append(dict(method=f"EM n_init={n_init}", seed=seed,
                             mean_error=mean_error(em.means_, truth), loglik=em.score(X),
                             seconds=time.perf_counter() - t0))
        t0 = time.perf_counter()
        em = gm.to_sklearn(random_state=seed).fit(X)
        runs.append(dict(method="EM from overtensor", seed=seed,
                         mean_error=mean_error(em.means_, truth), loglik=em.score(X),
                         seconds=t_ot + time.perf_counter() - t0))
        print(f"# seed {seed} done", flush=True)
    rows = []
    for name in dict.fromkeys(r["method"] for r in runs):
        sel = [r for r in runs if r["method"] == name]
        rows.append({"method": name, "seeds": len(sel),
                     "max_mean_error": max(r["mean_error"] for r in sel),
                     "median_mean_error": statistics.median(r["mean_error"] for r in sel),
                     "median_loglik": statistics.median(r["loglik"] for r in sel)
                     if "loglik" in sel[0] else float("nan"),
                     "median_s": statistics.median(r["seconds"] for r in sel)})
    print_table(rows)
    tau = tie_tolerance(d, k, n, sigma)
    print(f"# per seed; tie tolerance tau = 1e-3 * sigma * sqrt(d k / n) = {tau:.2e} on mean errors "
          "(tie_tolerance in overtensor/experiments/method_of_moments.py); EM's own tolerance "
          "1e-3 nats/sample on log-likelihoods (scikit-learn's tol)")
    per_seed = []
    for seed in range(n_seeds):
        e = {r["method"]: r for r in runs if r["seed"] == seed}
        err = {m: e[m]["mean_error"] for m in e}
        ot_e, cp_e = err["overtensor"], err["best rank-k CP (same whitened T)"]
        pm_e, als_e = err["power-method (same whitened T)"], err["tensorly-parafac (same whitened T)"]
        best = min(pm_e, als_e)
        em10, emot = e["EM n_init=10"], e["EM from overtensor"]
        per_seed.append({
            "seed": seed, "overtensor": ot_e, "best_cp": cp_e, "power": pm_e, "als": als_e,
            "ot-min(pm,als)": ot_e - best, "cp-min(pm,als)": cp_e - best,
            "verdict": "lower" if ot_e < best - tau else ("tie" if ot_e <= best + tau else "HIGHER"),
            "ot/em10": ot_e / em10["mean_error"],
            "emot-em10 loglik": emot["loglik"] - em10["loglik"],
            "emot_s": emot["seconds"], "em10_s": em10["seconds"],
            "em_claim": "met" if emot["loglik"] >= em10["loglik"] - 1e-3
            and emot["seconds"] < em10["seconds"] else "NOT met"})
    print_table(per_seed)
    return rows


class CountingSource:
    """A source that counts the passes made over it (``chunks()`` calls run to the end)."""

    def __init__(self, source):
        self.source, self.n, self.dim, self.passes = source, source.n, source.dim, 0

    def chunks(self):
        yield from self.source.chunks()
        self.passes += 1


def large(n: int = 1_000_000, sigma: float = 0.25, d: int = 10_000, k: int = 10,
          chunk_size: int = 8192) -> list[dict]:
    M = planted(d, k, 1.0, 0)
    src = CountingSource(SphericalMixtureStream(M, torch.full((k,), 1 / k), sigma, n, seed=0,
                                                chunk_size=chunk_size, dtype=torch.float32))
    t0 = time.perf_counter()
    last = [t0]

    def progress(p, total):
        now = time.perf_counter()
        print(f"# pass {p + 1}/{total} (previous took {now - last[0]:.1f} s)", flush=True)
        last[0] = now

    gm = GaussianMixture(k, random_state=0).fit(src, progress=progress)
    seconds = time.perf_counter() - t0
    cos = matched_cos(gm.means_, M.numpy())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    row = {"d": d, "k": k, "n": n, "sigma": sigma, "threads": torch.get_num_threads(),
           "passes": src.passes, "seconds": seconds, "min_cos": float(cos.min()),
           "recovered_at_0.99": f"{int((cos >= 0.99).sum())}/{k}", "peak_rss_GiB": peak,
           "sigma2_est": gm.covariance_,
           "dense_M3_TiB": d**3 * 8 / 2**40, **{f"t_{a}": b for a, b in gm.timings_.items()}}
    print_table([row])
    return [row]


def real(n_seeds: int) -> list[dict]:
    """Per-component and shared-variance moments against EM on iris, wine and digits."""
    import warnings

    from sklearn import datasets
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture as SkGM

    from overtensor.experiments.method_of_moments import clustering_accuracy, load_dataset

    runs = []
    for dataset in ("iris", "wine", "digits"):
        centred, labels, k, _ = load_dataset(dataset, 0)
        data = getattr(datasets, f"load_{dataset}")()
        raw = data.data[:, data.data.std(0) > 0]
        for prep, X in (("raw", raw), ("centred", centred)):
            for seed in range(n_seeds):
                models = {
                    "overtensor spherical (per-component σ²)":
                        lambda k=k, seed=seed: GaussianMixture(k, random_state=seed),
                    "overtensor tied-spherical (shared σ²)":
                        lambda k=k, seed=seed: GaussianMixture(
                            k, covariance_type="tied-spherical", random_state=seed),
                    "EM n_init=1": lambda k=k, seed=seed: SkGM(k, covariance_type="spherical",
                                                               random_state=seed),
                    "EM n_init=10": lambda k=k, seed=seed: SkGM(
                        k, covariance_type="spherical", n_init=10, random_state=seed),
                }
                for name, make in models.items():
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)  # model-mismatch warnings
                        pred = make().fit(X).predict(X)
                    runs.append(dict(dataset=dataset, features=prep, method=name, seed=seed,
                                     accuracy=clustering_accuracy(pred, labels),
                                     ari=adjusted_rand_score(labels, pred),
                                     seconds=time.perf_counter() - t0))
        print(f"# {dataset} done", flush=True)
    rows = []
    for dataset in ("iris", "wine", "digits"):
        for prep in ("raw", "centred"):
            for name in dict.fromkeys(r["method"] for r in runs):
                sel = [r for r in runs if r["method"] == name and r["dataset"] == dataset
                       and r["features"] == prep]
                acc = [r["accuracy"] for r in sel]
                ari = [r["ari"] for r in sel]
                rows.append({"dataset": dataset, "features": prep, "method": name,
                             "seeds": len(sel),
                             "accuracy": f"{statistics.mean(acc):.3f} ± {statistics.pstdev(acc):.3f}",
                             "ARI": f"{statistics.mean(ari):.3f} ± {statistics.pstdev(ari):.3f}",
                             "median_s": statistics.median(r["seconds"] for r in sel)})
    print_table(rows)
    return runs


def hsu_kakade(n_seeds: int, n: int = 30_000) -> list[dict]:
    """Hsu & Kakade (2013)'s configuration (module docstring), both covariance types and EM."""
    import warnings

    from sklearn.mixture import GaussianMixture as SkGM

    M, w, s = 4 * np.eye(3, 10), np.array([0.3, 0.3, 0.4]), np.array([0.5, 1.0, 2.0])
    rows = []
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        z = rng.choice(3, n, p=w)
        X = M[z] + s[z, None] * rng.normal(size=(n, 10))
        fits = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for kind in ("spherical", "tied-spherical"):
                fits[kind] = GaussianMixture(3, covariance_type=kind, random_state=seed).fit(X)
        fits["EM n_init=1"] = SkGM(3, covariance_type="spherical", random_state=seed).fit(X)
        for name, model in fits.items():
            D = np.linalg.norm(model.means_[:, None] - M[None], axis=-1)
            r, c = linear_sum_assignment(D)
            order = r[np.argsort(c)]
            rows.append({"seed": seed, "method": name, "max_mean_error": float(D[r, c].max()),
                         "max_weight_error": float(np.abs(model.weights_[order] - w).max()),
                         "sigma": " ".join(f"{v:.3f}" for v in np.sqrt(model.covariances_[order]))})
    print_table(rows)
    for name in ("spherical", "tied-spherical", "EM n_init=1"):
        sel = [r for r in rows if r["method"] == name]
        print(f"# {name}: worst mean error {max(r['max_mean_error'] for r in sel):.4f}, "
              f"worst weight error {max(r['max_weight_error'] for r in sel):.4f}")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--real", action="store_true", help="iris, wine, digits against EM")
    ap.add_argument("--hsu-kakade", action="store_true", help="Hsu & Kakade (2013)'s mixture")
    ap.add_argument("--n", type=int, default=1_000_000, help="samples of --large")
    ap.add_argument("--sigma", type=float, default=0.25, help="noise level of --large")
    ap.add_argument("--d", type=int, default=10_000, help="dimension of --large")
    ap.add_argument("--chunk-size", type=int, default=8192, help="rows per chunk of --large")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = print_machine()
    if args.real:
        write_csv("bench_moments_real", real(args.seeds), info)
    elif args.hsu_kakade:
        write_csv("bench_moments_hsu_kakade", hsu_kakade(args.seeds), info)
    elif args.large:
        write_csv("bench_moments_large", large(args.n, args.sigma, args.d,
                                               chunk_size=args.chunk_size), info)
    else:
        write_csv("bench_moments", small(args.seeds), info)


if __name__ == "__main__":
    main()
