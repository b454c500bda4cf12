"""Static output dims where the exporter left them symbolic (a YOLO's 4 + nc axis).

The TorchScript exporter names every output dim it cannot infer (`Concatoutput0_dim_1` for
the 84 of a YOLOv8 `output0` (N, 84, A)): the DFL's reshapes go through shape tensors its
shape inference does not fold, and onnxsim does not fold them either (onnxslim does). The
dim does not vary with the input, so a consumer (TensorRT's profile, a C++ post-processor,
ultralytics' own loader) should see it fixed:

    notes = pin_static_output_dims(proto, {"output0": (0, 2)}, {"output0": (1, 84, 2100)})

Only dims the adapter did not declare dynamic, and only where the graph holds a name
instead of a number, are set; a dim that is already a number is left as it is. onnxruntime
does not enforce declared output shapes, so parity would not see a wrong pin: the pins are
only the axes the adapter declares static (a detector's 4 + nc), which eager never varies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx


def pin_static_output_dims(proto: onnx.ModelProto, output_axes: Mapping[str, Sequence[int]],
                           shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """Pin, in place, each graph output dim outside `output_axes[name]` to `shapes[name]` (the eager output's
    shape at the example); outputs absent from `output_axes` are left alone. Returns one note per output pinned."""
    notes = []
    for output in proto.graph.output:
        if output.name not in output_axes or output.name not in shapes:
            continue
        dynamic, shape = set(output_axes[output.name]), list(shapes[output.name])
        dims = output.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            continue
        pinned = []
        for axis, (dim, size) in enumerate(zip(dims, shape)):
            if axis not in dynamic and dim.HasField("dim_param"):
                was = dim.dim_param
                dim.dim_value = int(size)  # clears dim_param (a oneof)
                pinned.append(f"dim {axis} {was!r} -> {int(size)}")
        if pinned:
            notes.append(f"{output.name}: {', '.join(pinned)} (does not vary with the input)")
    return notes


__all__ = ["pin_static_output_dims"]
