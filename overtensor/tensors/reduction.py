"""Fewer terms for the same fit: rank reduction of an extracted CP (issue 10, items 1 and 10).

An over-parameterized fit can end on an *exact but non-minimal* CP: two correlated components
replaced by three terms in their span, which no merge of aligned rows can undo. The extracted CP
then meets ``tol`` and still gives the user the wrong components. :func:`reduce_rank` therefore
tries to explain the CP with one term fewer, again and again:

1. every one-term-smaller candidate (the CP without term ``j``) gets the least-squares weights of
   its remaining directions (``G c = b`` with ``G = (U Uᵀ)^{∘l}``, ``b_i = T*(u_i, …, u_i)``: the
   Gram identity, no ``d^l`` array); its error ranks the candidates (the cheapest removal first);
2. the ``candidates`` cheapest are polished in turn by the exact-rank L-BFGS of
   :func:`overtensor.tensors.extraction.polish` (free weights and directions, float64), in up to
   :data:`ROUNDS` rounds while the error keeps falling and is above ``HEADROOM · tol``
   (:func:`polish_to`), so that an accepted CP leaves the next removal some margin;
3. the first polished candidate within ``tol`` is accepted and the loop goes on from it; when
   none is, the loop stops and the smaller rank is recorded as refused, with its best error.

Step 0: when the target's unfolding spectrum is cheap (:mod:`overtensor.tensors.unfolding`) and proves
that no CP with one term fewer comes within ``2·tol``, the loop stops at once (the refusal is
recorded with that lower bound and ``lower_bound: True``) — the same outcome, without polishing
candidates that cannot succeed.

Under a rank cap (``max_rank``) the loop instead keeps the best polished candidate until the CP
has at most ``max_rank`` terms, whatever its error (above the cap only the cheapest removal is
polished; at the cap ``candidates`` are) (the best CP with at most ``max_rank`` terms
reachable from the over-parameterized solution), then continues as above only while ``tol`` holds.

Measured in ``docs/method.md`` and ``benchmarks/bench_correlated.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from overtensor.tensors.cp import SymmetricCP
from overtensor.tensors.extraction import polish
from overtensor.tensors.gauss_newton import MAX_UNKNOWNS, levenberg_marquardt
from overtensor.tensors.metrics import cp_relative_error
from overtensor.tensors.targets import Target
from overtensor.tensors.unfolding import min_relative_error, unfolding_singular_values

#: Candidates polished per rank (cheapest removals first).
CANDIDATES = 3

#: At most this many polish rounds per candidate (:func:`polish_to`).
ROUNDS = 5

#: Candidates whose first L-BFGS polish ends above this are not refined further.
LM_BELOW = 1e-2

#: Candidates are polished toward ``HEADROOM · tol`` (accepted at ``tol``).
HEADROOM = 0.1


@dataclass
class Reduction:
    """What :func:`reduce_rank` did.

    Attributes
    ----------
    cp : SymmetricCP
        The smallest accepted CP.
    relative_error : float
        Its float64 relative error.
    tried : list of dict
        One entry per rank tried: ``rank``, best polished ``relative_error``, ``accepted``.
    stop : str
        Why the loop stopped.
    noise : dict or None
        The rank chosen under noise (:func:`_walk`): ``found``, ``supported``,
        ``relative_error``, ``start_relative_error``, ``rule``.
    """

    cp: SymmetricCP
    relative_error: float
    tried: list[dict[str, Any]] = field(default_factory=list)
    stop: str = ""
    noise: dict[str, Any] | None = None


def least_squares_weights(U: torch.Tensor, target: Target) -> torch.Tensor:
    """Weights ``c`` minimizing ``‖Σ_j c_j u_j^{⊗l} − T*‖`` for fixed unit rows ``U`` ``(r, d)``,
    in float64, from the normal equations ``(U Uᵀ)^{∘l} c = T*(u_j, …, u_j)`` (least-squares solve,
    so that nearly parallel rows do not blow up)."""
    t64 = target.float64()
    U64 = U.detach().to(torch.float64)
    G = (U64 @ U64.T) ** target.order
    b = t64.values(U64)
    return torch.linalg.lstsq(G, b.unsqueeze(-1)).solution.squeeze(-1)


def _without(cp: SymmetricCP, j: int, target: Target) -> SymmetricCP:
    keep = [i for i in range(cp.rank) if i != j]
    U = cp.components[keep]
    c = least_squares_weights(U, target).to(cp.weights.dtype)
    return SymmetricCP(c, U, cp.order)


def polish_to(cp: SymmetricCP, target: Target, *, tol: float, polish_iter: int,
              rounds: int = ROUNDS) -> tuple[SymmetricCP, float]:
    """Exact-rank refinement of a candidate toward relative error ``tol``; returns the CP and its
    float64 error.

    First ``polish_iter`` L-BFGS iterations (:func:`overtensor.tensors.extraction.polish`); a candidate
    still above :data:`LM_BELOW` is not near an exact CP and is returned as it is (this keeps
    refused removals cheap). Between ``tol`` and ``LM_BELOW``: Levenberg–Marquardt
    (:func:`overtensor.tensors.gauss_newton.levenberg_marquardt`, up to ``polish_iter // 2`` steps) when
    ``r(d+1) ≤ MAX_UNKNOWNS`` — correlated components make the exact-rank problem ill-conditioned
    and L-BFGS then crawls just above ``tol`` (a 20-term CP of six components at pairwise cosines
    0.3–0.7 was reduced to 13 terms with L-BFGS, to 6 with Levenberg–Marquardt); above that size
    more L-BFGS, in up to ``rounds`` rounds while the error falls by 1 % a round.
    """
    cp = polish(cp, target, max_iter=polish_iter)
    err = cp_relative_error(cp, target)
    if err <= tol or err > LM_BELOW:
        return cp, err
    if cp.rank * (cp.dim + 1) <= MAX_UNKNOWNS:
        out, _ = levenberg_marquardt(cp, target, max_iter=max(1, polish_iter // 2),
                                     stop_below=tol)
        out_err = cp_relative_error(out, target)
        return (out, out_err) if out_err < err else (cp, err)
    for _ in range(rounds - 1):
        if err <= tol:
            break
        nxt = polish(cp, target, max_iter=polish_iter)
        nxt_err = cp_relative_error(nxt, target)
        if not nxt_err < 0.99 * err:
            break
        cp, err = nxt, nxt_err
    return cp, err


def reduce_rank(
    cp: SymmetricCP,
    target: Target,
    *,
    tol: float,
    polish_iter: int,
    max_rank: int | None = None,
    candidates: int = CANDIDATES,
    rescue_below: float | None = None,
    accept_tol: bool = True,
) -> Reduction:
    """Remove terms while the polished CP stays within ``tol`` (or until ``max_rank``).

    Parameters
    ----------
    cp : SymmetricCP, rank ``r``
        The extracted (and polished) CP in the target's scale.
    target : Target
    tol : float
        Relative error a smaller CP must meet to be accepted (when not forced by ``max_rank``).
    polish_iter : int
        L-BFGS iterations of each candidate's polish (:func:`overtensor.tensors.extraction.polish`).
    max_rank : int, optional
        Cap: reduce to at most this many terms whatever the error (best candidate each time).
    candidates : int
        Candidates polished per rank, cheapest removals first.
    rescue_below : float, optional
        When ``cp`` misses ``tol`` (a non-minimal CP that the over-parameterized run left just
        above it), first remove its cheapest terms one by one, each smaller CP polished, while the
        error stays at most ``rescue_below``; the first one within ``tol`` is accepted and the
        usual loop goes on from it; if none is, the rank is chosen against the residual (the
        noise level) and ``Reduction.noise`` records it (:func:`_walk`).
    accept_tol : bool
        Whether the walk may accept a CP within ``tol`` (False where the CP was not polished
        first: then only the rank under noise is chosen).

    Returns
    -------
    Reduction
    """
    rel = cp_relative_error(cp, target)
    out = Reduction(cp, rel)
    if rescue_below is not None and max_rank is None and not rel <= tol:
        if not _walk(out, target, tol=tol, polish_iter=polish_iter, below=rescue_below,
                     accept_tol=accept_tol) or out.noise is not None:
            return out
    spectrum = unfolding_singular_values(target) if max_rank is None else None
    while out.cp.rank > 1:
        forced = max_rank is not None and out.cp.rank > max_rank
        if not forced and not out.relative_error <= tol:
            out.stop = f"rank {out.cp.rank} does not meet tol: nothing to reduce"
            break
        # A proof that one term fewer cannot meet tol (Eckart-Young on the unfolding; margin 2x so
        # that no rounding decides) makes the candidates' polishes pointless.
        bound = min_relative_error(spectrum, out.cp.rank - 1) if spectrum is not None else 0.0
        if not forced and bound > 2 * tol:
            out.tried.append({"rank": out.cp.rank - 1, "relative_error": bound,
                              "accepted": False, "lower_bound": True})
            out.stop = (f"rank {out.cp.rank - 1} refused: the unfolding's singular values bound "
                        f"the error of every {out.cp.rank - 1}-term CP below by {bound:.1e} > "
                        f"tol {tol:.0e}")
            break
        cur = out.cp
        scored = []
        for j in range(cur.rank):
            cand = _without(cur, j, target)
            scored.append((cp_relative_error(cand, target), j, cand))
        scored.sort(key=lambda s: s[0])
        best: tuple[float, SymmetricCP] | None = None
        # While forced above the cap only the cheapest removal is polished (a greedy path);
        # the last forced step and every tol-guarded step try `candidates`.
        n_try = candidates if not forced or cur.rank - 1 <= max_rank else 1
        for _, _, cand in scored[:n_try]:
            # Polish toward HEADROOM·tol, accept at tol: a CP accepted just under tol leaves the
            # next removal no margin (and a decision at the margin flips with rounding).
            polished, err = polish_to(cand, target, tol=HEADROOM * tol, polish_iter=polish_iter)
            if best is None or err < best[0]:
                best = (err, polished)
            if not forced and err <= tol:
                break
        assert best is not None
        err, smaller = best
        accepted = forced or err <= tol
        out.tried.append({"rank": smaller.rank, "relative_error": err, "accepted": accepted})
        if not accepted:
            out.stop = (f"rank {smaller.rank} refused: best error {err:.1e} > tol {tol:.0e} "
                        f"({min(n_try, len(scored))} candidates)")
            break
        out.cp, out.relative_error = smaller, err
    else:
        out.stop = "rank 1 reached"
    if any(t["accepted"] for t in out.tried):
        # Candidates were refined only to HEADROOM·tol: finish the accepted one to precision.
        final, err = polish_to(out.cp, target, tol=0.0, polish_iter=polish_iter)
        if err < out.relative_error:
            out.cp, out.relative_error = final, err
    return out



#: A term is significant against the residual when removing it (and polishing the rest) raises
#: the relative error by more than this factor (:func:`_walk`).
SIGNIFICANT = 2.0


def _walk(out: Reduction, target: Target, *, tol: float, polish_iter: int, below: float,
          accept_tol: bool = True) -> bool:
    """The greedy removal path of a CP that misses ``tol`` (issue 22, items 3 and 4); True when
    ``out.cp`` was replaced.

    From ``out.cp``, remove the cheapest term (least-squares weights of the rest, then
    :func:`polish_to`), again and again, while the polished error stays ``≤ below`` or rises by at
    most :data:`SIGNIFICANT` per removed term. Every rank is recorded in ``out.tried``
    (``"walk": True``).

    * **Rescue** (with ``accept_tol``): the first CP on the path within ``tol`` is accepted. At
      rank equal to the dimension (order 3, ``d = r = 8``) wide runs end at ``1e-4``–``7e-4``
      with 19–24 terms that no merge reduces; the same runs capped at ``rank=8`` recover every
      component (``docs/method.md``, step 10).
    * **Rank under noise** otherwise: the residual of the over-parameterized CP is the noise
      level, and a term is kept only if it is significant against it. Removing a term that fits
      noise raises the error a little (per removed term at most ``×1.3`` measured on
      ``random_target(3, 10, 3, noise=ε)``, ``ε ∈ {1e-3, 1e-2, 5e-2}``, seeds 0–2), removing a
      component at least ``×3.2`` (typically ``×20``–``×600``); the CP before the first step
      that more than doubles the error is kept and ``out.noise`` records the choice.
    """
    start, start_err = out.cp, out.relative_error
    path = [(start, start_err)]
    cur, cur_err = start, start_err
    while cur.rank > 1:
        scored = sorted(((cp_relative_error(c, target), c) for c in
                         (_without(cur, j, target) for j in range(cur.rank))),
                        key=lambda s: s[0])
        nxt, err = polish_to(scored[0][1], target, tol=HEADROOM * tol, polish_iter=polish_iter)
        accepted = accept_tol and err <= tol
        out.tried.append({"rank": nxt.rank, "relative_error": err, "accepted": accepted,
                          "walk": True})
        if accepted:
            out.cp, out.relative_error = nxt, err
            return True
        path.append((nxt, err))
        if err > below and err > SIGNIFICANT * cur_err:
            break
        cur, cur_err = nxt, err
    chosen = len(path) - 1
    for k in range(1, len(path)):
        if path[k][1] > SIGNIFICANT * path[k - 1][1]:
            chosen = k - 1
            break
    out.cp, out.relative_error = path[chosen]
    out.noise = {"found": start.rank, "supported": out.cp.rank,
                 "relative_error": out.relative_error, "start_relative_error": start_err,
                 "rule": (f"a term is kept when removing it raises the polished error by more "
                          f"than {SIGNIFICANT:g}x")}
    # (Without accept_tol a CP on the path may meet tol: only the noise rule decided then.)
    why = ("no CP on the removal path meets tol" if accept_tol
           else "CPs within tol are not accepted (not polished first)")
    out.stop = (f"rank {out.cp.rank} chosen under noise: {why}; removing one more term raises "
                f"the error by more than {SIGNIFICANT:g}x")
    return chosen > 0
