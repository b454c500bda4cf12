"""Shared pieces of the deform_conv2d lowerings, and the standard ONNX `DeformConv` form (opset >= 19).

`check_deform_inputs` validates the operands of `torchvision::deform_conv2d` (static
channel dims always; batch and spatial dims where they are known) and returns the
`DeformParams` every lowering is written from. `TorchScriptWriter` and `OnnxScriptWriter`
give the lowerings one way to emit nodes for either exporter.

torchvision's operator: `deform_conv2d(input, weight, offset, mask, bias, stride_h,
stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, offset_groups, use_mask)` with
input (N, C, H, W), weight (C_out, C/groups, kh, kw), offset (N, 2·offset_groups·kh·kw,
H', W') laid out `g·2·kh·kw + 2·(i·kw + j) + {0: Δy, 1: Δx}`, mask (N, offset_groups·kh·kw,
H', W') (a dummy (N, 1) tensor when `use_mask` is false) and bias (C_out,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import onnx

from attndeploy.errors import UsageError, require

Dims = Optional[Sequence[Optional[int]]]
FLOAT_TYPES = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float16): onnx.TensorProto.FLOAT16}


@dataclass(frozen=True)
class DeformParams:
    """Static description of one deform_conv2d call (all ints, known at export time)."""

    in_channels: int
    out_channels: int
    kh: int
    kw: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    offset_groups: int
    use_mask: bool

    @property
    def taps(self) -> int:
        """kh·kw, the kernel taps per offset group."""
        return self.kh * self.kw


def _dim(shape: Dims, axis: int) -> Optional[int]:
    """A dim that is a plain int (SymInt, symbolic and unknown dims give None)."""
    if shape is None or axis >= len(shape):
        return None
    d = shape[axis]
    return d if type(d) is int else None


def _rank4(name: str, shape: Dims, layout: str) -> None:
    if shape is not None:
        require(len(shape) == 4, f"deform_conv2d {name} must be 4-D {layout}", "rank 4", f"rank {len(shape)}")


def _pair(name: str, value: Sequence[int], low: int) -> tuple[int, int]:
    pair = tuple(int(v) for v in value)
    require(len(pair) == 2 and min(pair) >= low, f"deform_conv2d {name} must be two ints >= {low}",
            f"(h, w) >= {low}", tuple(value))
    return pair  # type: ignore[return-value]


def check_deform_inputs(x_shape: Dims, weight_shape: Sequence[Optional[int]], offset_shape: Dims,
                        mask_shape: Dims = None, *, stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0),
                        dilation: Sequence[int] = (1, 1), groups: Optional[int] = None,
                        offset_groups: Optional[int] = None) -> DeformParams:
    """Validate deform_conv2d operands; unknown dims (None, SymInt) are skipped.

    x: (N, C, H, W); weight: (C_out, C/groups, kh, kw) (static); offset: (N, 2·G_off·kh·kw,
    H', W'); mask: (N, G_off·kh·kw, H', W') or None (no mask). `groups` and `offset_groups`
    are torchvision's values where known (it passes `offset.shape[1] // (2·kh·kw)`), else
    derived. Raises `UsageError` naming the rule, the expected and the actual value.
    """
    require(len(weight_shape) == 4 and all(type(d) is int and d >= 1 for d in weight_shape),
            "deform_conv2d weight must be a static 4-D tensor (C_out, C_in/groups, kh, kw)",
            "4 positive ints", tuple(weight_shape))
    c_out, c_per_group, kh, kw = [d for d in weight_shape if type(d) is int]
    _rank4("input", x_shape, "(N, C, H, W)")
    _rank4("offset", offset_shape, "(N, 2·offset_groups·kh·kw, H', W')")
    _rank4("mask", mask_shape, "(N, offset_groups·kh·kw, H', W')")
    stride, padding, dilation = _pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    c_in = _dim(x_shape, 1)
    if c_in is None:
        require(groups is not None, "deform_conv2d needs a static channel dim on its input",
                "input.shape[1] known at export time", "a dynamic channel dim")
        c_in = int(groups) * c_per_group  # type: ignore[arg-type]
    require(c_in % c_per_group == 0, f"input channels must be a multiple of weight.shape[1] = {c_per_group}",
            f"a multiple of {c_per_group}", c_in)
    if groups is None:
        groups = c_in // c_per_group
    require(groups * c_per_group == c_in, f"input.shape[1] must be groups·weight.shape[1] = {groups * c_per_group}",
            f"{groups * c_per_group} (groups={groups}, weight.shape[1]={c_per_group})", c_in)
    require(c_out % groups == 0, f"weight.shape[0] (C_out) must be divisible by groups={groups}",
            f"a multiple of {groups}", c_out)
    taps = kh * kw
    off_c = _dim(offset_shape, 1)
    require(off_c is not None, "deform_conv2d needs a static channel dim on its offset",
            "offset.shape[1] known at export time", "a dynamic channel dim")
    if offset_groups is None:
        offset_groups = max(off_c // (2 * taps), 1)  # type: ignore[operator]
    expected = 2 * offset_groups * taps
    require(off_c == expected, f"offset.shape[1] must be 2·offset_groups·kh·kw = {expected}",
            f"{expected} channels (offset_groups={offset_groups}, kernel {kh}x{kw})", off_c)
    require(c_in % offset_groups == 0, f"input channels must be divisible by offset_groups={offset_groups}",
            f"a multiple of {offset_groups}", c_in)
    if mask_shape is not None:
        mask_c = _dim(mask_shape, 1)
        require(mask_c is not None, "deform_conv2d needs a static channel dim on its mask",
                "mask.shape[1] known at export time", "a dynamic channel dim")
        require(mask_c == offset_groups * taps, f"mask.shape[1] must be offset_groups·kh·kw = {offset_groups * taps}",
                f"{offset_groups * taps} channels (offset_groups={offset_groups}, kernel {kh}x{kw})", mask_c)
    _check_batch_and_grid(x_shape, offset_shape, mask_shape, (kh, kw), stride, padding, dilation)
    return DeformParams(c_in, c_out, kh, kw, stride, padding, dilation, int(groups), int(offset_groups),
                        mask_shape is not None)


def _check_batch_and_grid(x_shape: Dims, offset_shape: Dims, mask_shape: Dims, kernel: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]) -> None:
    """Batch dims agree; offset and mask cover the conv's output grid (where the dims are known)."""
    for name, shape in (("offset", offset_shape), ("mask", mask_shape)):
        n_x, n_o = _dim(x_shape, 0), _dim(shape, 0)
        if n_x is not None and n_o is not None:
            require(n_x == n_o, f"{name}.shape[0] must equal the input's batch", n_x, n_o)
        for axis, (k, s, p, d) in enumerate(zip(kernel, stride, padding, dilation), start=2):
            size, got = _dim(x_shape, axis), _dim(shape, axis)
            if size is None:
                continue
            out = (size + 2 * p - d * (k - 1) - 1) // s + 1
            require(out >= 1, "deform_conv2d output must not be empty",
                    f"input dim {axis} >= {d * (k - 1) + 1 - 2 * p}", size)
            if got is not None:
                require(got == out, f"{name}.shape[{axis}] must be the conv output size {out}",
                        f"(in + 2·pad - dilation·(k-1) - 1) // stride + 1 = {out}", got)


def check_dtype(dtype: np.dtype) -> np.dtype:
    """The lowerings write float32 and float16 graphs."""
    require(dtype in FLOAT_TYPES, "deform_conv2d lowering supports float32 and float16 inputs",
            "float32 or float16", str(dtype))
    return dtype


class TorchScriptWriter:
    """Emits nodes into a TorchScript-exporter graph (`g.op`); attribute types come from the values."""

    def __init__(self, g: Any, dtype: np.dtype) -> None:
        self.g, self.dtype = g, check_dtype(dtype)

    def op(self, op_type: str, *inputs: Any, **attrs: Any) -> Any:
        import torch

        kwargs: dict[str, Any] = {}
        for key, value in attrs.items():
            if isinstance(value, str):
                kwargs[key + "_s"] = value
            elif isinstance(value, float):
                kwargs[key + "_f"] = value
            elif isinstance(value, np.ndarray):
                kwargs[key + "_t"] = torch.from_numpy(np.ascontiguousarray(value))
            else:
                kwargs[key + "_i"] = [int(v) for v in value] if isinstance(value, (list, tuple)) else int(value)
        return self.g.op(op_type, *inputs, **kwargs)

    def const(self, array: Any, dtype: Any = None) -> Any:
        return self.op("Constant", value=np.asarray(array, dtype=dtype or self.dtype))

    @staticmethod
    def sizes(value: Any) -> Dims:
        """The value's dims (None where dynamic), or None when the rank is unknown."""
        try:
            sizes = value.type().varyingSizes()
        except (AttributeError, RuntimeError):
            return None
        return None if sizes is None else list(sizes)


class OnnxScriptWriter:
    """Emits nodes while the dynamo exporter traces a translation function (onnxscript ops)."""

    def __init__(self, opset: int, dtype: np.dtype) -> None:
        import onnxscript

        self.ops = getattr(onnxscript, f"opset{opset}")
        self.dtype = check_dtype(dtype)

    def op(self, op_type: str, *inputs: Any, **attrs: Any) -> Any:
        import onnx_ir as ir

        attrs = {k: ir.tensor(v) if isinstance(v, np.ndarray) else v for k, v in attrs.items()}
        return getattr(self.ops, op_type)(*inputs, **attrs)

    def const(self, array: Any, dtype: Any = None) -> Any:
        return self.op("Constant", value=np.asarray(array, dtype=dtype or self.dtype))

    @staticmethod
    def sizes(value: Any) -> Dims:
        """The value's dims (None where symbolic), or None when the shape is unknown."""
        shape = getattr(value, "shape", None)
        return None if shape is None else [d if isinstance(d, int) else None for d in shape]


def emit_onnx(w: Any, p: DeformParams, x: Any, weight: Any, offset: Any, mask: Any, bias: Any) -> Any:
    """ONNX `DeformConv` (opset >= 19): inputs (X, W, offset, B[, mask]); mask left out without one.

    x: (N, C, H, W) -> (N, C_out, H', W').
    """
    ph, pw = p.padding
    inputs = [x, weight, offset, bias] + ([mask] if p.use_mask else [])
    return w.op("DeformConv", *inputs, dilations=list(p.dilation), group=p.groups, kernel_shape=[p.kh, p.kw],
                offset_group=p.offset_groups, pads=[ph, pw, ph, pw], strides=list(p.stride))


def usage_error_in(err: BaseException) -> Optional[UsageError]:
    """The first `UsageError` in `err`'s cause/context chain (exporters wrap what lowerings raise)."""
    seen: set[int] = set()
    current: Optional[BaseException] = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UsageError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
