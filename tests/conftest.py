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


# ---- Ray: ONE local instance per test session, shared by every @pytest.mark.ray test ----------
# (added for the search driver tests: tests/test_search_integration.py)
# Ray reads part of its environment at import time (loopback binding), so it is set here,
# before any test module imports ray.
from nas.search.ray_session import configure_ray_env  # noqa: E402

configure_ray_env(address=None)


@pytest.fixture(scope="session")
def ray_local():
    """2 CPUs and 2 *fake* GPUs: GPU scheduling and GPU-hour accounting without CUDA.

    Trials given a fake GPU fall back to the CPU (``torch.cuda.is_available()`` is False).
    Started on first use and stopped at the end of the session (start/stop costs ~5 s).
    """
    import logging

    import ray

    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
