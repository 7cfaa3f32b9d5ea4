import os

import pytest
import torch

# Tests run on a 2-core machine; one thread keeps timings and numerics predictable.
torch.set_num_threads(int(os.environ.get("OVERTENSOR_TEST_THREADS", "1")))


def dense_cp(weights: torch.Tensor, V: torch.Tensor, order: int) -> torch.Tensor:
    """Reference dense ``Σ_i a_i v_i^{⊗l}`` (small sizes only)."""
    letters = "abcdefgh"[:order]
    spec = ",".join(f"r{c}" for c in letters)
    return torch.einsum(f"r,{spec}->{letters}", weights, *([V] * order))


@pytest.fixture
def dense():
    return dense_cp
