"""Issue 16, item 2 (issue 21: now ``fit``'s default route): the shortcut path of the compressed fit
(early switch to Levenberg-Marquardt extraction, curvature step size, NumPy steps), the paper's
path with ``engine="paper"``, the unfolding's error bound and the NumPy kernels against their
torch references. ``Shortcuts(spm=False)`` keeps the route off the subspace power method so that
the shortcuts themselves are tested."""

import numpy as np
import pytest
import torch

import overtensor as ot
from overtensor.tensors import small_core as small
from overtensor.tensors.compression import compress
from overtensor.tensors.gauss_newton import levenberg_marquardt
from overtensor.tensors.gradients import loss_and_grad
from overtensor.tensors.reduction import reduce_rank
from overtensor.tensors.shortcuts import Shortcuts, small_core
from overtensor.tensors.unfolding import min_relative_error, unfolding_singular_values

NO_SPM = Shortcuts(spm=False)


def _dense(order, dim, rank, seed):
    truth = ot.random_target(order, dim, rank, random_state=seed).truth
    return ot.DenseTarget(truth.to_dense(), truth)


@pytest.mark.parametrize("order,seed", [(3, 0), (3, 1), (4, 2)])
def test_shortcut_fit_recovers_every_component_with_the_reported_error_against_the_array(
        order, seed):
    target = _dense(order, 20 if order == 3 else 12, 4, seed)
    result = ot.fit(target, 16, random_state=seed, runtime=ot.Runtime(shortcuts=NO_SPM))
    assert result.info["compression"]["dim"] == 4
    assert result.info["shortcuts"]["switched_at"] is not None  # the early switch was taken
    assert result.converged and result.cp.rank == 4
    assert result.recovery().recovered == 4
    diff = result.cp.to_dense() - target.array
    assert result.relative_error == pytest.approx(float(diff.norm() / target.array.norm()),
                                                  rel=1e-6, abs=1e-7)
    # Minimal rank certified by the spectrum: no CP with 3 terms comes within tol.
    assert "minimal" in result.info["rank_reduction"]["stop"]


def test_the_switch_takes_far_fewer_steps_than_the_papers_schedule_on_the_same_core():
    target = _dense(3, 20, 4, 5)
    fast = ot.fit(target, 16, random_state=5, runtime=ot.Runtime(shortcuts=NO_SPM))
    paper = ot.fit(target, 16, random_state=5, runtime=ot.Runtime(engine="paper"))
    assert fast.converged and paper.converged
    assert "shortcuts" not in paper.info and paper.info["route"]["engine"] == "paper"
    assert fast.steps * 4 < paper.steps
    # Both found the same components.
    assert fast.recovery().recovered == paper.recovery().recovered == 4


def test_switch_off_runs_the_papers_schedule_with_numpy_steps_to_the_same_answer():
    target = _dense(3, 16, 3, 7)
    no_switch = ot.fit(target, 12, random_state=7,
                       runtime=ot.Runtime(shortcuts=Shortcuts(early_switch=False, adaptive_lr=False,
                                           check_every=50, spm=False)))
    # The paper's schedule on the same core from the same generator (after the same sketch).
    gen = torch.Generator().manual_seed(7)
    comp = compress(target, random_state=gen, sketch_size=12 + 10)
    paper = ot.fit(comp.core, 12, random_state=gen, runtime=ot.Runtime(engine="paper"))
    assert no_switch.info["shortcuts"]["switched_at"] is None
    # Same schedule, same draws, same step formula: the same decisions (rounding aside).
    assert no_switch.steps == paper.steps
    assert no_switch.stop_reason == paper.stop_reason
    assert no_switch.converged and paper.converged


def test_cp_and_moment_cores_take_the_shortcut_path():
    cp_target = ot.random_target(3, 200, 4, random_state=3)
    result = ot.fit(cp_target, 16, random_state=3, runtime=ot.Runtime(shortcuts=NO_SPM))
    assert result.info["shortcuts"]["switched_at"] is not None
    assert result.converged and result.recovery().recovered == 4
    truth = cp_target.truth
    samples = truth.components.repeat(30, 1) * 4 ** (1 / 3)  # moments = Σ u_j^{⊗3} exactly
    moments = ot.MomentTarget(samples, 3)
    result = ot.fit(moments, 16, random_state=4, runtime=ot.Runtime(shortcuts=NO_SPM))
    assert result.info["shortcuts"]["switched_at"] is not None
    assert result.converged and ot.recovery(result.cp, cp_target).recovered == 4


def test_an_option_the_shortcuts_do_not_take_falls_back_to_the_papers_schedule():
    target = _dense(3, 16, 3, 1)
    seen = []
    result = ot.fit(target, 12, random_state=1,
                    callback=lambda rec, state: seen.append(rec["step"]))
    assert result.info["route"]["engine"] == "paper" and seen  # the paper's loop called back
    assert "callback=" in result.info["route"]["why"]


@pytest.mark.parametrize("bad", [dict(stable_cos=1.5), dict(lr_factor=0.0), dict(lr_factor=3.0),
                                 dict(max_lr_ratio=0.5), dict(lm_iter=0), dict(check_every=0),
                                 dict(curvature_every=True)])
def test_bad_shortcut_options_name_the_argument(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        Shortcuts(**bad)


def test_shortcuts_of_the_wrong_type_are_refused_before_any_work():
    with pytest.raises(TypeError, match="shortcuts"):
        ot.fit(_dense(3, 10, 2, 0), 8, runtime=ot.Runtime(shortcuts="fast"))


def test_unfolding_bound_holds_for_every_cp_and_is_the_same_for_dense_and_cp_forms():
    target = ot.random_target(3, 12, 4, random_state=2)
    sv_cp = unfolding_singular_values(target)
    sv_dense = unfolding_singular_values(ot.DenseTarget(target.truth.to_dense()))
    assert torch.allclose(sv_cp[:4], sv_dense[:4], rtol=1e-9)
    assert float(sv_dense[4:].abs().max()) < 1e-6 * float(sv_dense[0])  # rank 4
    bound3 = min_relative_error(sv_dense, 3)
    assert bound3 > 0.05
    # No 3-term CP beats the bound: the truth minus a term, and a polished attempt.
    best = reduce_rank(target.truth, target, tol=1e-4, polish_iter=100)
    assert best.cp.rank == 4 and best.tried[0].get("lower_bound")
    truth = target.truth
    for j in range(4):
        keep = [i for i in range(4) if i != j]
        three = ot.SymmetricCP(truth.weights[keep], truth.components[keep], 3)
        assert ot.cp_relative_error(three, target) >= bound3 * (1 - 1e-9)


def test_numpy_step_matches_the_closed_form_gradient_of_the_homogeneous_model():
    target = _dense(3, 5, 3, 4)
    scale = 1.0 / float(target.sq_norm().sqrt())
    core = small_core(target, scale)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(8, 5, generator=g, dtype=torch.float64) * 0.3
    signs = torch.ones(8, dtype=torch.float64)
    _, grads = loss_and_grad("homogeneous", {"W": W}, signs, target, scale, None, 1e-3,
                             with_loss=False)
    Wn = W.numpy().copy()
    small.gd_steps(core, Wn, signs.numpy(), 1e-3, 0.1, 1)
    assert np.allclose((W.numpy() - Wn) / 0.1, grads["W"].numpy(), rtol=1e-10, atol=1e-13)


def test_levenberg_marquardt_on_the_numpy_core_matches_the_one_on_the_torch_core():
    comp = compress(_dense(3, 20, 3, 6), random_state=0)
    core_t = comp.core
    scale = 1.0 / float(core_t.sq_norm().sqrt())
    core = small_core(core_t, scale)
    g = torch.Generator().manual_seed(1)
    torch.rand(3, generator=g, dtype=torch.float64)  # advances g: U as before
    U = torch.randn(3, 3, generator=g, dtype=torch.float64)
    # Start near the truth of the core (its CP) so that both converge to the exact fit.
    start = ot.SymmetricCP(torch.ones(3, dtype=torch.float64),
                           (comp.basis.T @ _dense(3, 20, 3, 6).truth.components.T).T
                           + 0.02 * U, 3, normalize=True)
    before = ot.cp_relative_error(start, core_t)
    assert before > 1e-3
    _, ref_err = levenberg_marquardt(start, core_t, max_iter=30, stop_below=1e-6)
    cn, Un, err = small.levenberg_marquardt(core, start.weights.numpy() * scale,
                                            start.components.numpy().copy(), max_iter=30,
                                            stop_below=1e-6)
    assert err <= 1e-6 and ref_err <= 1e-6
    # The NumPy result, mapped back, has that error against the torch core too.
    norms = np.linalg.norm(Un, axis=1)
    out = ot.SymmetricCP(torch.from_numpy(cn * norms**3 / scale),
                         torch.from_numpy(Un / norms[:, None]), 3)
    assert ot.cp_relative_error(out, core_t) == pytest.approx(err, rel=1e-3, abs=1e-7)


def test_moment_spectrum_equals_the_dense_one_and_certifies_the_rank_of_a_moment_fit():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(30, 6, generator=g, dtype=torch.float64)
    moments = ot.MomentTarget(X, 3)
    dense = ot.DenseTarget(torch.einsum("na,nb,nc->abc", X, X, X) / 30)
    sv_m, sv_d = unfolding_singular_values(moments), unfolding_singular_values(dense)
    assert torch.allclose(sv_m[:6], sv_d, rtol=1e-8, atol=1e-12)
    assert float(sv_m[6:].max()) < 1e-6 * float(sv_m[0])  # the unfolding has d = 6 rows
    truth = ot.random_target(3, 40, 3, random_state=8).truth
    samples = truth.components.repeat(20, 1) * 3 ** (1 / 3)
    result = ot.fit(ot.MomentTarget(samples, 3), 12, random_state=8,
                    runtime=ot.Runtime(shortcuts=NO_SPM))
    assert result.converged and result.cp.rank == 3
    assert "minimal" in result.info["rank_reduction"]["stop"]


@pytest.mark.parametrize("bad", [dict(float32="no"), dict(early_switch=1), dict(confirm=None),
                                 dict(adaptive_lr="yes"), dict(stable_cos="0.9"),
                                 dict(spm="yes")])
def test_shortcut_fields_of_the_wrong_type_name_the_field_and_value(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(TypeError, match=f"{name}.*{value!r}"):
        Shortcuts(**bad)


def test_default_shortcuts_that_cannot_apply_say_why_and_explicit_ones_are_refused():
    target = _dense(3, 10, 2, 0)
    result = ot.fit(target, 6, random_state=0, schedule=ot.GradientSchedule(optimizer="adam",
                    max_steps=50))
    assert result.info["route"]["engine"] == "paper"
    assert result.info["route"]["why"].endswith("optimizer='adam'")
    with pytest.raises(ValueError, match="optimizer='adam'"):
        ot.fit(target, 6, random_state=0, schedule=ot.GradientSchedule(optimizer="adam"),
               runtime=ot.Runtime(shortcuts=Shortcuts(float32=True)))
    with pytest.raises(ValueError, match="method='gd'"):
        ot.fit(target, 6, "gd", runtime=ot.Runtime(shortcuts=Shortcuts()))
    with pytest.raises(ValueError, match="engine='paper'"):
        ot.fit(target, 6, runtime=ot.Runtime(engine="paper", shortcuts=Shortcuts()))
    with pytest.raises(ValueError, match="width"):
        ot.fit(target)
