"""deform_conv2d with standard ops only: one `GridSample` (opset >= 16) over every kernel tap, then one MatMul.

For tap k = i·kw + j of offset group g at output pixel (h', w'), torchvision samples the
input bilinearly at

    y = h'·stride_h - pad_h + i·dilation_h + Δy,   x = w'·stride_w - pad_w + j·dilation_w + Δx

and reads zero where the point lies outside (-1, H) x (-1, W) — `GridSample` with
`padding_mode="zeros"` and `align_corners=0` does exactly that once the point is
normalised as `gx = (2x + 1)/W - 1` (finite at W = 1, unlike the align_corners form).
All taps go through a single GridSample: the grid is (N·G_off, kh·kw·H'·W', 1, 2), the
input is viewed as (N·G_off, C/G_off, H, W). The samples, times the mask, are the im2col
matrix (N, groups, C/groups·kh·kw, H'·W') that one grouped MatMul with the weight turns
into the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attndeploy.lowering.deformconv_onnx import FLOAT_TYPES, DeformParams

MIN_OPSET = 16


def _i64(w: Any, values: Any) -> Any:
    return w.const(values, np.int64)


def _tap_offsets(p: DeformParams, axis: int) -> np.ndarray:
    """(kh·kw, 1, 1, 1): i·dilation_h (axis 0) or j·dilation_w (axis 1) for each tap k = i·kw + j."""
    i, j = np.divmod(np.arange(p.taps), p.kw)
    steps = i * p.dilation[0] if axis == 0 else j * p.dilation[1]
    return steps.reshape(-1, 1, 1, 1)


def _normalised_base(w: Any, p: DeformParams, axis: int, out_size: Any, scale: Any, shift: Any) -> Any:
    """The offset-free sampling position of every tap, normalised: (kh·kw, 1, H', 1) or (kh·kw, 1, 1, W').

    pos = idx·stride - pad + tap·dilation; normalised = pos·(2/S) + (1/S - 1).
    """
    idx = w.op("Cast", w.op("Range", _i64(w, 0), out_size, _i64(w, 1)), to=FLOAT_TYPES[w.dtype])
    pos = w.op("Add", w.op("Mul", idx, w.const(float(p.stride[axis]))), w.const(float(-p.padding[axis])))
    pos = w.op("Reshape", pos, _i64(w, [1, 1, -1, 1] if axis == 0 else [1, 1, 1, -1]))
    pos = w.op("Add", pos, w.const(_tap_offsets(p, axis)))
    return w.op("Add", w.op("Mul", pos, scale), shift)


def emit_decompose(w: Any, p: DeformParams, x: Any, weight: Any, offset: Any, mask: Any, bias: Any,
                   opset: int) -> Any:
    """Write the decomposition with writer `w` (see `deformconv_onnx`); returns (N, C_out, H', W').

    x: (N, C, H, W); weight: (C_out, C/groups, kh, kw); offset: (N, 2·G_off·kh·kw, H', W');
    mask: (N, G_off·kh·kw, H', W') (used only if `p.use_mask`); bias: (C_out,).
    """
    g_off, taps, groups = p.offset_groups, p.taps, p.groups
    to_float = FLOAT_TYPES[w.dtype]
    x_shape, o_shape = w.op("Shape", x), w.op("Shape", offset)
    n = w.op("Slice", x_shape, _i64(w, [0]), _i64(w, [1]))                      # [N]
    out_hw = w.op("Slice", o_shape, _i64(w, [2]), _i64(w, [4]))                 # [H', W']
    in_hw = w.op("Cast", w.op("Slice", x_shape, _i64(w, [2]), _i64(w, [4])), to=to_float)  # [H, W]
    scale = w.op("Div", w.const([2.0, 2.0]), in_hw)                             # [2/H, 2/W]
    shift = w.op("Sub", w.op("Div", w.const([1.0, 1.0]), in_hw), w.const([1.0, 1.0]))
    # offset (N, G_off·kh·kw·2, H', W') -> (N, G_off, kh·kw, 2, H', W'); component 0 is Δy, 1 is Δx
    # N comes from the shape, not a 0 in the target: TorchScript's shape inference rejects a 0 without a -1.
    off6 = w.op("Reshape", offset, w.op("Concat", n, _i64(w, [g_off, taps, 2]), out_hw, axis=0))
    parts = []
    for axis in (1, 0):  # GridSample wants (x, y) in the last dim
        s = w.op("Slice", scale, _i64(w, [axis]), _i64(w, [axis + 1]))
        b = w.op("Slice", shift, _i64(w, [axis]), _i64(w, [axis + 1]))
        # Reshape to [] keeps H' / W' 0-d for Range even after TorchScript folds a static shape.
        size = w.op("Reshape", w.op("Gather", o_shape, _i64(w, [2 + axis])), _i64(w, np.zeros(0, np.int64)))
        base = _normalised_base(w, p, axis, size, s, b)
        delta = w.op("Slice", off6, _i64(w, [axis]), _i64(w, [axis + 1]), _i64(w, [3]))
        parts.append(w.op("Add", w.op("Mul", delta, s), base))                  # (N, G_off, kh·kw, 1, H', W')
    grid = w.op("Transpose", w.op("Concat", *parts, axis=3), perm=[0, 1, 2, 4, 5, 3])
    n_og = w.op("Mul", n, _i64(w, [g_off]))                                     # [N·G_off]
    grid = w.op("Reshape", grid, w.op("Concat", n_og, _i64(w, [-1, 1, 2]), axis=0))
    xg = w.op("Reshape", x, _i64(w, [-1, p.in_channels // g_off, 0, 0]))       # (N·G_off, C/G_off, H, W)
    mode = "linear" if opset >= 20 else "bilinear"
    cols = w.op("GridSample", xg, grid, align_corners=0, mode=mode, padding_mode="zeros")
    # cols: (N·G_off, C/G_off, kh·kw·H'·W', 1), times the mask viewed as (N·G_off, 1, kh·kw·H'·W', 1)
    if p.use_mask:
        cols = w.op("Mul", cols, w.op("Reshape", mask, w.op("Concat", n_og, _i64(w, [1, -1, 1]), axis=0)))
    cols = w.op("Reshape", cols, w.op("Concat", n, _i64(w, [groups, p.in_channels // groups * taps, -1]), axis=0))
    w2 = w.op("Reshape", weight, _i64(w, [groups, p.out_channels // groups, -1]))
    out = w.op("MatMul", w2, cols)                                              # (N, groups, C_out/groups, H'·W')
    out = w.op("Reshape", out, w.op("Concat", n, _i64(w, [p.out_channels]), out_hw, axis=0))
    return w.op("Add", out, w.op("Reshape", bias, _i64(w, [1, p.out_channels, 1, 1])))
