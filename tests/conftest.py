"""Shared test setup: one intra-op thread (tiny tensors; the machine's cores are shared) and a fixed seed."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fixed_seed() -> int:
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(0)
    return 0
