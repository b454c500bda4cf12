"""A Triton Inference Server model repository for an ONNX graph: `triton/<name>/config.pbtxt` and `1/model.onnx`.

    triton/cbam/config.pbtxt      platform onnxruntime_onnx; inputs and outputs read from the graph
    triton/cbam/1/model.onnx      a copy of the graph (and its external-data files)

    tritonserver --model-repository models/cbam/triton

`max_batch_size` follows the graph's batch axis: when axis 0 of every input and output is
one dynamic axis, Triton batches (`max_batch_size` = the profile's max batch, dims without
the batch axis); otherwise `max_batch_size: 0` and the full dims (-1 where dynamic). The
text is Triton's `ModelConfig` protobuf in text format (model_config.proto), written here so
the bundle needs no tritonclient; the tests parse it with Triton's own protobuf.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
from onnx import TensorProto

from attndeploy.bundle.graph_io import GraphTensor, batch_is_dynamic, graph_io, read_graph
from attndeploy.errors import UsageError, require
from attndeploy.fileio import ensure_writable_dir, write_bytes_atomic
from attndeploy.precision.plan import graph_precision

PLATFORM = "onnxruntime_onnx"
CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"  # Triton's default_model_filename for onnxruntime_onnx
# onnx.TensorProto element type -> Triton DataType (model_config.proto).
TRITON_TYPES: dict[int, str] = {
    TensorProto.BOOL: "TYPE_BOOL", TensorProto.UINT8: "TYPE_UINT8", TensorProto.UINT16: "TYPE_UINT16",
    TensorProto.UINT32: "TYPE_UINT32", TensorProto.UINT64: "TYPE_UINT64", TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT16: "TYPE_INT16", TensorProto.INT32: "TYPE_INT32", TensorProto.INT64: "TYPE_INT64",
    TensorProto.FLOAT16: "TYPE_FP16", TensorProto.FLOAT: "TYPE_FP32", TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.STRING: "TYPE_STRING", TensorProto.BFLOAT16: "TYPE_BF16",
}
# Triton's onnxruntime backend: the TensorRT execution accelerator's precision_mode for each graph precision.
ACCELERATOR_PRECISION = {"fp32": "FP32", "fp16": "FP16"}
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _quote(text: str) -> str:
    """`text` as a protobuf text-format string literal (C escapes; UTF-8 kept as is)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _tensor_block(tensor: GraphTensor, drop_batch: bool) -> list[str]:
    elem = TRITON_TYPES.get(tensor.elem_type)
    require(elem is not None, "Triton must have a data type for every graph input and output",
            "one of " + ", ".join(sorted({TensorProto.DataType.Name(t) for t in TRITON_TYPES})),
            f"{tensor.name!r} of type {TensorProto.DataType.Name(tensor.elem_type)}")
    dims = tensor.dims_with_minus_one()[1 if drop_batch else 0:]
    return ["  {", f"    name: {_quote(tensor.name)}", f"    data_type: {elem}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]", "  }"]


def _section(key: str, tensors: Sequence[GraphTensor], drop_batch: bool) -> Iterator[str]:
    yield f"{key} ["
    for i, tensor in enumerate(tensors):
        block = _tensor_block(tensor, drop_batch)
        if i < len(tensors) - 1:
            block[-1] += ","
        yield from block
    yield "]"


def _accelerator(precision: str) -> list[str]:
    mode = ACCELERATOR_PRECISION.get(precision)
    require(mode is not None, "the TensorRT accelerator block is written for fp32 and fp16 graphs",
            "an fp32 or fp16 graph", f"a {precision} graph (build its engine with build_engine.sh instead)")
    return ["optimization {", "  execution_accelerators {", "    gpu_execution_accelerator: [", "      {",
            '        name: "tensorrt"', f'        parameters {{ key: "precision_mode" value: "{mode}" }}', "      }",
            "    ]", "  }", "}"]


def triton_config(model: onnx.ModelProto, name: str, max_batch: int | None = None,
                  tensorrt_accelerator: bool = False) -> str:
    """config.pbtxt's text for `model` served as `name`.

    `max_batch`: the profile's max batch, used (and required) when the graph has a dynamic
    batch axis (`batch_is_dynamic`); ignored for a graph without one. `tensorrt_accelerator`:
    add the onnxruntime backend's TensorRT execution accelerator, precision_mode FP16 for an
    fp16 graph, FP32 for an fp32 one (a Q/DQ int8 graph is refused: build its engine instead).
    """
    inputs, outputs = graph_io(model)
    batched = batch_is_dynamic(inputs, outputs)
    if batched:
        require(max_batch is not None and max_batch >= 1, "a graph with a dynamic batch axis needs the profile's "
                "max batch for Triton's max_batch_size", "max_batch >= 1", max_batch)
    lines = [f"name: {_quote(name)}", f'platform: "{PLATFORM}"', f"max_batch_size: {max_batch if batched else 0}"]
    lines += [*_section("input", inputs, batched), *_section("output", outputs, batched)]
    if tensorrt_accelerator:
        lines += _accelerator(graph_precision(model))
    return "\n".join(lines) + "\n"


def _external_files(model: onnx.ModelProto) -> list[str]:
    """The external-data files the graph's initializers name (relative to the model's folder)."""
    found = []
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if location and location not in found:
                found.append(location)
    return found


def write_triton_repository(onnx_path: Path, out_dir: Path, name: str, max_batch: int | None = None,
                            tensorrt_accelerator: bool = False) -> Path:
    """Write `out_dir/triton/<name>/config.pbtxt` and `.../1/model.onnx` (a copy of `onnx_path` and its
    external-data files); returns the model's folder, `out_dir/triton/<name>`.

    `name`: Triton's model name (the folder's name): letters, digits, `_`, `.`, `-`.
    `max_batch` and `tensorrt_accelerator`: see `triton_config`. `UsageError` for a bad name,
    a graph Triton cannot describe, or a dynamic batch axis without `max_batch`.
    """
    require(bool(_MODEL_NAME.fullmatch(name)), "a Triton model name must be a plain folder name",
            "letters, digits, _ . - (not starting with . or -)", repr(name))
    model = read_graph(Path(onnx_path))
    text = triton_config(model, name, max_batch, tensorrt_accelerator)
    source = Path(onnx_path).parent
    extra = _external_files(model)
    missing = [f for f in extra if not (source / f).is_file() or Path(f).is_absolute() or ".." in Path(f).parts]
    if missing:
        raise UsageError("the graph's external-data files must lie beside it", "files inside the model's folder",
                         ", ".join(missing))
    folder = Path(out_dir) / "triton" / name
    version = ensure_writable_dir(folder / "1")
    shutil.copyfile(onnx_path, version / MODEL_FILE)
    for rel in extra:
        (version / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, version / rel)
    write_bytes_atomic(folder / CONFIG_FILE, text.encode())
    return folder
