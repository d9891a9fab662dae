"""Parameter and multiply-accumulate counts for any ``nn.Module`` at a given input size.

Convention: fvcore's, i.e. one fused multiply-add counts as one (``gmacs``), the unit that the
MetaFormer, ConvNeXt, Swin and GFNet papers call "FLOPs".  Counts come from
``fvcore.nn.FlopCountAnalysis`` plus the handles below.

fvcore's weaknesses and what this module does about them:

- It traces with TorchScript (``torch.jit._get_trace_graph``), deprecated upstream since
  torch 2.11 but still working.  Tracing records one concrete path, so data-dependent control
  flow (padding to a window multiple, size checks) is counted as taken at the given input
  size, which is what we want.  We trace once, in ``eval()`` under ``no_grad``, with the
  tracer's and fvcore's warnings silenced; the model's training flag is restored afterwards.
- It counts 0 for ops without a handle.  Those land in ``FlopProfile.uncounted_ops`` so a
  mixer is never silently cheaper than it is; the ops we count 0 *on purpose* are listed in
  ``DELIBERATELY_IGNORED`` and do not.
- It has no handle for ``aten::scaled_dot_product_attention`` (fused attention), FFTs,
  pooling other than adaptive average, bicubic upsampling or ``aten::im2col``; its ``matmul``
  handle ignores broadcast batch dimensions of the second operand, and its ``einsum`` handle
  halves element-wise products and ignores complex arithmetic.  The handles here fix these:

  ============================  =====================================================================
  op                            MACs counted
  ============================  =====================================================================
  scaled_dot_product_attention  QK^T + AV: ``batch * heads * L * S * (E + Ev)`` (softmax ignored)
  fft_rfft2 / fft_irfft2        GFNet/HorNet convention: ``n * ceil(log2 n)`` per transformed 2-D
                                plane, ``n`` = product of the two transformed dims of the real-valued
                                side; dims are read from the op's ``dim`` argument, so NHWC
                                (``dim=(1, 2)``) and NCHW layouts both count correctly.
  matmul / mm / bmm / baddbmm   ``numel(output) * K`` (exact, broadcast-aware)
  linalg_vecdot                 ``numel(broadcast inputs)``: one MAC per product (MSDA's q.k per offset)
  addcmul                       one MAC per output element (``self + t1 * t2``: MSDA's attn * v sum)
  einsum                        two operands: product of all index sizes (one MAC per point of the
                                joint index space); more operands: fvcore's optimal-path estimate.
                                x4 when an operand is complex (one complex MAC = 4 real MACs).
  mul / mul_                    4 per output element when an operand is complex (the dynamic
                                filter's spectrum x filter product); real element-wise: 0
  avg_pool2d                    ``numel(output) * kernel area``
  upsample_bicubic2d            16 per output element (4x4 taps; fvcore counts bilinear as 4)
  torchvision::deform_conv2d    the convolution (``numel(output) * C_in / groups * kh * kw``) plus
                                4 per bilinearly sampled input value (``B * C_in * kh * kw * oh * ow``),
                                +1 per sample with a modulation mask (fvcore's bilinear convention)
  im2col (``nn.Unfold``)        0, deliberately: a copy.  The MACs of what consumes the patches
                                (matmul/einsum) are counted there.
  ============================  =====================================================================

Element-wise ops, activations, softmax and reductions count 0 (fvcore's convention; fvcore's
maintainers call them "often negligible").  fvcore's own handles are kept otherwise
(``linear``, ``_convolution`` with groups, norms at 4-5 per element, ``adaptive_avg_pool2d`` at 1
per input element).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore scripts its losses at import: torch.jit.script is deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import einsum_flop_jit, elementwise_flop_counter, get_shape

__all__ = ["FlopProfile", "profile", "DELIBERATELY_IGNORED"]

# Counted as 0 on purpose (fvcore convention): element-wise arithmetic, activations, softmax,
# reductions, dtype/layout conversions, constant factories.  (``aten::mul`` has a handle: only
# complex products count.)
DELIBERATELY_IGNORED: tuple[str, ...] = tuple(f"aten::{op}" for op in (
    "add", "add_", "sub", "sub_", "rsub", "div", "div_", "neg", "abs", "pow", "square", "sqrt", "rsqrt",
    "exp", "log", "reciprocal", "sign", "where", "clone", "fill_",
    "softmax", "log_softmax", "sigmoid", "sigmoid_", "tanh", "gelu", "silu", "hardswish", "hardsigmoid",
    "leaky_relu", "elu",
    "mean", "sum", "amax", "norm", "linalg_vector_norm", "var", "var_mean", "std",
    "view_as_complex", "view_as_real", "real", "imag", "complex", "type_as", "pad", "repeat", "expand_as",
    "flip", "view_as", "masked_fill_", "lt", "le", "ne",
    "eye", "ones_like", "empty_like", "linspace",
))


@dataclass(frozen=True)
class FlopProfile:
    """Cost of one forward pass (eval mode) at ``input_shape``."""

    params: int
    gmacs: float
    by_operator: dict[str, int]  # MACs per op (fvcore's short names, e.g. "linear", "conv")
    uncounted_ops: dict[str, int]  # op -> occurrences seen with no handle (counted as 0)
    input_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


def profile(model: nn.Module, input_size: int | Sequence[int], *, batch_size: int = 1,
            channels_last: bool = False) -> FlopProfile:
    """Count parameters and MACs of ``model`` for one batch of size ``input_size``.

    ``input_size`` is ``S`` (square), ``(H, W)`` or ``(C, H, W)``; without C the model's
    ``pretrained_cfg`` input channels are used (3 if it has none).  ``channels_last=True``
    feeds ``(B, H, W, C)``, the layout every token mixer takes.
    """
    shape = _input_shape(model, input_size, batch_size, channels_last)
    first = next(model.parameters(), None)
    x = torch.randn(shape, device=first.device if first is not None else "cpu",
                    dtype=first.dtype if first is not None and first.is_floating_point() else torch.float32)
    analysis = FlopCountAnalysis(model, x).set_op_handle(**_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total = analysis.total()
            by_operator = {k: int(v) for k, v in sorted(analysis.by_operator().items()) if v}
            uncounted = dict(sorted(analysis.unsupported_ops().items()))
    finally:
        model.train(was_training)
    return FlopProfile(
        params=sum(p.numel() for p in model.parameters()),
        gmacs=total / 1e9,
        by_operator=by_operator,
        uncounted_ops=uncounted,
        input_shape=tuple(shape),
    )


def _input_shape(model: nn.Module, input_size: int | Sequence[int], batch_size: int,
                 channels_last: bool) -> tuple[int, ...]:
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    dims = tuple(int(v) for v in input_size)
    if len(dims) == 2:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        dims = (int(cfg.get("input_size", (3,))[0]),) + dims
    if len(dims) != 3 or min(dims) < 1 or batch_size < 1:
        raise ValueError(f"input_size must be S, (H, W) or (C, H, W) of positive ints, got {input_size!r}")
    c, h, w = dims
    return (batch_size, h, w, c) if channels_last else (batch_size, c, h, w)


# --- handles: (inputs, outputs) are TorchScript values of one graph node -------------------------

def _constant(value: Any) -> Any:
    """Python value of a constant (or a list of constants) in the traced graph."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    return value.toIValue()


def _is_complex(value: Any) -> bool:
    t = value.type()
    return isinstance(t, torch._C.TensorType) and (t.scalarType() or "").startswith("Complex")


def _sdpa_macs(inputs: list, outputs: list) -> int:
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = math.prod(torch.broadcast_shapes(tuple(q[:-2]), tuple(k[:-2]), tuple(v[:-2])))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _fft2_macs(real_side: str):
    """``n * ceil(log2 n)`` per 2-D plane; ``real_side`` says which tensor is real-valued."""

    def handle(inputs: list, outputs: list) -> int:
        real = get_shape(inputs[0] if real_side == "input" else outputs[0])
        dims = _constant(inputs[2]) or [-2, -1]
        n = math.prod(real[d] for d in dims)
        return (math.prod(real) // n) * n * math.ceil(math.log2(n)) if n > 1 else 0

    return handle


def _matmul_macs(first_operand: int):
    """``numel(output) * K`` with K the last dim of the left matrix (``inputs[first_operand]``)."""

    def handle(inputs: list, outputs: list) -> int:
        return math.prod(get_shape(outputs[0])) * get_shape(inputs[first_operand])[-1]

    return handle


def _vecdot_macs(inputs: list, outputs: list) -> int:
    return math.prod(torch.broadcast_shapes(tuple(get_shape(inputs[0])), tuple(get_shape(inputs[1]))))


def _one_per_output(inputs: list, outputs: list) -> int:
    return math.prod(get_shape(outputs[0]))


def _einsum_macs(inputs: list, outputs: list) -> int:
    operands = list(inputs[1].node().inputs())
    scale = 4 if any(_is_complex(v) for v in operands) else 1
    if len(operands) != 2:
        return int(einsum_flop_jit(inputs, outputs)) * scale
    equation = _constant(inputs[0]).replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for letters, value in zip(equation.split(","), operands):
        sizes.update(zip(letters, get_shape(value)))
    return math.prod(sizes.values()) * scale


def _mul_macs(inputs: list, outputs: list) -> int:
    if any(_is_complex(v) for v in inputs[:2]):
        return 4 * math.prod(get_shape(outputs[0]))
    return 0


def _deform_conv2d_macs(inputs: list, outputs: list) -> int:
    """``torchvision::deform_conv2d(input, weight, offset, mask, bias, ..., use_mask)``."""
    batch, in_chans, _, _ = get_shape(inputs[0])
    out_chans, in_per_group, kh, kw = get_shape(inputs[1])
    out_h, out_w = get_shape(outputs[0])[-2:]
    samples = batch * in_chans * kh * kw * out_h * out_w
    per_sample = 5 if _constant(inputs[13]) else 4
    return batch * out_chans * out_h * out_w * in_per_group * kh * kw + per_sample * samples


def _avg_pool2d_macs(inputs: list, outputs: list) -> int:
    kernel = _constant(inputs[1])
    kh, kw = (kernel * 2)[:2] if len(kernel) == 1 else kernel
    return math.prod(get_shape(outputs[0])) * kh * kw


_HANDLES: dict[str, Any] = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    "aten::fft_rfft2": _fft2_macs("input"),
    "aten::fft_irfft2": _fft2_macs("output"),
    "aten::matmul": _matmul_macs(0),
    "aten::mm": _matmul_macs(0),
    "aten::bmm": _matmul_macs(0),
    "aten::baddbmm": _matmul_macs(1),
    "aten::linalg_vecdot": _vecdot_macs,
    "aten::addcmul": _one_per_output,
    "aten::addcmul_": _one_per_output,
    "aten::einsum": _einsum_macs,
    "aten::mul": _mul_macs,
    "aten::mul_": _mul_macs,
    "aten::avg_pool2d": _avg_pool2d_macs,
    "torchvision::deform_conv2d": _deform_conv2d_macs,
    "aten::upsample_bicubic2d": elementwise_flop_counter(0, 16),
    "aten::im2col": None,
    **{op: None for op in DELIBERATELY_IGNORED},
}
