"""The contract every registered token mixer keeps (NHWC in, NHWC out), parametrised over the registry."""
from __future__ import annotations

import inspect

import pytest
import torch

import mixers
from mixers import MIXER_NAMES, create_mixer, validate_mixer

# DynaMixer's mixing-matrix generators are sized by the token grid: it runs only at its build size.
FIXED_SIZE = {"dynamixer"}

# (H, W) run sizes; the mixer is built for the size it runs at.  56x56 only at batch 1.
SIZES = [(7, 7), (13, 13), (14, 14), (15, 9), (56, 56)]
SHAPE_CASES = [(hw, batch, dim) for hw in SIZES for batch, dim in ((1, 96), (3, 64)) if hw != (56, 56) or batch == 1]

# One invalid hyperparameter per mixer (beyond the registry's generic checks); a new mixer needs one.
BAD_HPARAMS: dict[str, dict] = {
    "dynamic_filter": {"num_filters": 0},
    "dma": {"fuse": "bogus"},
    "hilo": {"alpha": 1.5},
    "msda": {"kernel_size": 4},
    "dynamixer": {"num_segments": 0},
    "mhsa": {"head_dim": 0},
    "sepconv": {"kernel_size": 4},
    "pooling": {"pool_size": 2},
}


def _nhwc(batch: int, hw: tuple[int, int], dim: int, **kwargs) -> torch.Tensor:
    return torch.randn(batch, hw[0], hw[1], dim, **kwargs)


@pytest.mark.parametrize("hw,batch,dim", SHAPE_CASES, ids=[f"{h}x{w}-b{b}-c{c}" for (h, w), b, c in SHAPE_CASES])
@pytest.mark.parametrize("name", MIXER_NAMES)
def test_output_shape_equals_input(name: str, hw: tuple[int, int], batch: int, dim: int) -> None:
    mixer = create_mixer(name, dim, input_size=hw).eval()
    x = _nhwc(batch, hw, dim)
    with torch.no_grad():
        y = mixer(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("run_hw", [(13, 13), (15, 9), (28, 28)])
@pytest.mark.parametrize("name", MIXER_NAMES)
def test_runs_at_other_than_build_size(name: str, run_hw: tuple[int, int]) -> None:
    mixer = create_mixer(name, 64, input_size=(14, 14)).eval()
    x = _nhwc(2, run_hw, 64)
    with torch.no_grad():
        if name in FIXED_SIZE:
            with pytest.raises(ValueError, match=name):
                mixer(x)
        else:
            assert mixer(x).shape == x.shape


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_builds_without_input_size(name: str) -> None:
    if name in FIXED_SIZE:
        with pytest.raises(ValueError, match=name):
            create_mixer(name, 64)
        return
    mixer = create_mixer(name, 64).eval()
    x = _nhwc(1, (11, 12), 64)
    with torch.no_grad():
        assert mixer(x).shape == x.shape


@pytest.mark.parametrize("hw", [(14, 14), (15, 9)])
@pytest.mark.parametrize("name", MIXER_NAMES)
def test_every_parameter_gets_a_finite_gradient(name: str, hw: tuple[int, int]) -> None:
    mixer = create_mixer(name, 64, input_size=hw).train()
    x = _nhwc(2, hw, 64, requires_grad=True)
    mixer(x).square().mean().backward()
    missing = [n for n, p in mixer.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    bad = [n for n, p in mixer.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradient for {bad}"
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_bf16_autocast_on_cpu(name: str) -> None:
    mixer = create_mixer(name, 64, input_size=(14, 14)).eval()
    x = _nhwc(2, (14, 14), 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(x)
    assert y.shape == x.shape
    assert y.dtype in (torch.float32, torch.bfloat16)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_deterministic_under_fixed_seed(name: str) -> None:
    def build_and_run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(123)
        mixer = create_mixer(name, 64, input_size=(14, 14)).eval()
        x = _nhwc(2, (14, 14), 64)
        with torch.no_grad():
            return mixer(x), mixer(x)

    first, again = build_and_run()
    assert torch.equal(first, again)
    assert torch.equal(first, build_and_run()[0])


def test_unknown_mixer_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no_such_mixer"):
        create_mixer("no_such_mixer", 64)
    with pytest.raises(ValueError, match="no_such_mixer"):
        validate_mixer("no_such_mixer", 64)


def test_every_mixer_has_a_bad_hyperparameter_example() -> None:
    assert set(BAD_HPARAMS) == set(MIXER_NAMES)
    for name, hparams in BAD_HPARAMS.items():  # a real hyperparameter, not caught as an unknown one
        accepted = inspect.signature(mixers.get_mixer_class(name).__init__).parameters
        assert set(hparams) <= set(accepted), name


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_bad_hyperparameters_are_value_errors_naming_the_mixer(name: str) -> None:
    for hparams in (BAD_HPARAMS[name], {"no_such_hparam": 1}):
        with pytest.raises(ValueError, match=name):
            create_mixer(name, 64, input_size=(14, 14), **hparams)
        with pytest.raises(ValueError, match=name):
            validate_mixer(name, 64, input_size=(14, 14), **hparams)
    for dim in (0, -8):
        with pytest.raises(ValueError, match=name):
            create_mixer(name, dim, input_size=(14, 14))


@pytest.mark.parametrize("name", MIXER_NAMES)
def test_validate_mixer_allocates_on_meta(name: str) -> None:
    assert validate_mixer(name, 96, input_size=(56, 56)) is None
    with torch.device("meta"):
        mixer = create_mixer(name, 96, input_size=(56, 56))
    assert all(p.is_meta for p in mixer.parameters())
    assert mixers.get_mixer_class(name) is type(mixer)
