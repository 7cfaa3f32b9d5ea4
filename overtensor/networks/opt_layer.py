"""The OPT layer: a linear layer whose rows are a learned rotation of frozen random neurons
(Liu et al., "Orthogonal over-parameterized training", CVPR 2021; docs/theory/networks.md §3).

``OPTLinear(d, m)`` computes ``y = x Wᵀ + b`` with ``W = W_0 Rᵀ``: ``W_0`` (``(m, d)``) is a buffer
drawn once from ``N(0, 1/d)`` with an explicit generator, ``R ∈ O(d)`` is trained by one of
:data:`overtensor.regimes.orthogonal.ORTHOGONAL_METHODS`, the bias is trained. It is the functional
transformation :func:`overtensor.regimes.orthogonal.orthogonal` wrapped as a :class:`torch.nn.Module`.
Train a model holding OPT layers with :func:`opt_optimizer` (it routes ``riemannian`` rotations to
:class:`~overtensor.optim.cayley.CayleySGD`'s orthogonal group) and call :func:`resample_blocks`
every ``K`` steps for ``stochastic`` layers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from overtensor._checks import check_int, make_generator
from overtensor.optim.cayley import CayleySGD
from overtensor.regimes.energy import hyperspherical_energy
from overtensor.regimes.orthogonal import orthogonal, orthogonality_error


def _linear(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, p["W"], p.get("b"))


class OPTLinear(nn.Module):
    """Linear layer ``x ↦ x (W_0 Rᵀ)ᵀ + b`` with frozen ``W_0`` and orthogonal ``R``.

    Parameters
    ----------
    in_features, out_features : int
        ``d`` and ``m``.
    rotation : str
        Way of keeping ``R`` orthogonal (:data:`~overtensor.regimes.orthogonal.ORTHOGONAL_METHODS`).
    bias : bool
        Learn a bias (starts at 0).
    block_size : int, optional
        ``k`` of ``stochastic`` (default ``min(d, 32)``).
    random_state : int, torch.Generator or None
        Draws ``W_0`` (and the blocks of ``stochastic``).
    weight0 : Tensor ``(m, d)``, optional
        Use these frozen neurons instead of drawing them (e.g. to share an initialization with a
        standard layer).
    dtype : torch.dtype
        Default float32.
    """

    def __init__(self, in_features: int, out_features: int, *, rotation: str = "cayley",
                 bias: bool = True, block_size: int | None = None, random_state: Any = None,
                 weight0: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        d, m = check_int("in_features", in_features, 1), check_int("out_features", out_features, 1)
        gen = make_generator(random_state)
        if weight0 is None:
            weight0 = torch.randn(m, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        elif tuple(weight0.shape) != (m, d):
            raise ValueError(f"weight0 must have shape ({m}, {d}), got {tuple(weight0.shape)}")
        p0 = {"W": weight0.detach().to(dtype)}
        if bias:
            p0["b"] = torch.zeros(m, dtype=dtype)
        self.rotation_method = rotation
        self.fn, params = orthogonal(_linear, p0, key="W", method=rotation, train=("b",),
                                     k=block_size, random_state=gen)
        self.R = nn.Parameter(params["R"])
        self.bias = nn.Parameter(params["b"]) if bias else None

    def _params(self) -> dict[str, torch.Tensor]:
        return {"R": self.R} if self.bias is None else {"R": self.R, "b": self.bias}

    def weight(self) -> torch.Tensor:
        """``W = W_0 Rᵀ`` (``(m, d)``)."""
        return self.fn.weights(self._params())

    def rotation(self) -> torch.Tensor:
        """``R`` (``(d, d)``)."""
        return self.fn.rotation(self._params())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self._params(), x)

    @torch.no_grad()
    def resample(self) -> None:
        """Stochastic OPT: merge the current ``k × k`` block into ``W_0`` and restart it at ``I``."""
        new = self.fn.resample(self._params())
        self.R.copy_(new["R"])

    def orthogonality_error(self) -> float:
        """``‖RᵀR − I‖_F`` (float64)."""
        return orthogonality_error(self.rotation())

    def energy(self, s: float = 1.0) -> float:
        """Hyperspherical energy of the rows of ``W`` (float64)."""
        return float(hyperspherical_energy(self.weight().detach().double(), s))


def opt_layers(model: nn.Module) -> list[OPTLinear]:
    """The :class:`OPTLinear` layers of ``model``."""
    return [mod for mod in model.modules() if isinstance(mod, OPTLinear)]


def opt_optimizer(model: nn.Module, lr: float, momentum: float = 0.0) -> CayleySGD:
    """SGD (with ``momentum``) over ``model``'s parameters, with the ``R`` of every ``riemannian``
    OPT layer in an orthogonal group (Cayley retraction, momentum in the Lie algebra)."""
    rie = {id(layer.R) for layer in opt_layers(model) if layer.rotation_method == "riemannian"}
    ortho = [p for p in model.parameters() if id(p) in rie]
    rest = [p for p in model.parameters() if id(p) not in rie]
    groups = [{"params": rest, "orthogonal": False}]
    if ortho:
        groups.append({"params": ortho, "orthogonal": True})
    return CayleySGD(groups, lr=lr, momentum=momentum)


def resample_blocks(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Merge and redraw the blocks of every ``stochastic`` OPT layer, dropping their optimizer
    state (the momentum of a block means nothing for the next one)."""
    for layer in opt_layers(model):
        if layer.rotation_method == "stochastic":
            layer.resample()
            if optimizer is not None:
                optimizer.state.pop(layer.R, None)
