"""Reading an ONNX file to lint it: a missing, empty or foreign file, or external data that is missing or points
outside the model's folder, is bad input (`UsageError`, exit 2), never a lint verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
import onnx.external_data_helper
from onnx import TensorProto

from attndeploy.errors import UsageError, first_line, require
from attndeploy.onnxgraph import all_graphs


def load_model(model_or_path: onnx.ModelProto | str | Path | bytes) -> onnx.ModelProto:
    """The model; a file's external data is checked (inside the model's folder, present) and loaded.

    `UsageError` for a missing, empty or unreadable file, or bad external data.
    """
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    label = f"<{len(model_or_path)} bytes>" if isinstance(model_or_path, bytes) else str(model_or_path)
    try:
        if isinstance(model_or_path, bytes):
            model = onnx.load_from_string(model_or_path)
        else:
            model = onnx.load(str(model_or_path), load_external_data=False)
    except (FileNotFoundError, IsADirectoryError) as err:
        raise UsageError("the ONNX model must exist", "a readable .onnx file", label) from err
    except Exception as err:  # protobuf raises its own DecodeError
        raise UsageError("the file must be an ONNX model", "a serialized onnx.ModelProto",
                         f"{label} ({type(err).__name__}: {err})") from err
    if not (model.ir_version > 0 and model.HasField("graph") and len(model.opset_import) > 0):
        empty = model.ByteSize() == 0  # only here: serialising a large model to count its bytes is not free
        raise UsageError("the file must be an ONNX model", "a serialized onnx.ModelProto with an IR version, a graph "
                         "and opset imports", f"{label} ({'an empty file' if empty else 'none of them'})")
    if not isinstance(model_or_path, bytes):
        _load_external_data(model, Path(model_or_path))
    return model


def _tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor a graph (or subgraph) stores: initializers, sparse initializers, node attributes."""
    for g in all_graphs(model.graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Check every external-data reference (a file inside the model's folder, the bytes present), then load it."""
    base = path.parent.resolve()
    external = [t for t in _tensors(model) if t.data_location == TensorProto.EXTERNAL]
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        location, what = info.get("location", ""), f"tensor {tensor.name!r} in {path}"
        target = (base / location).resolve()
        require(location != "" and not Path(location).is_absolute() and target.is_relative_to(base)
                and target != base, "external data must be a file inside the model's folder",
                f"a relative path under {base}", f"{location!r} for {what}")
        require(target.is_file(), "the external data file must exist", "a file beside the model",
                f"{target} missing for {what}")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", 0))
        except ValueError as err:
            raise UsageError("external data offset and length must be integers", "integers",
                             f"{info} for {what}") from err
        size = target.stat().st_size
        require(0 <= offset and 0 <= length and offset + length <= size, "external data must lie within its "
                "file", f"offset + length <= {size} bytes", f"offset {offset}, length {length} for {what}")
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(base))
        except Exception as err:
            raise UsageError("the model's external data must be readable", "readable tensor files",
                             f"{path}: {first_line(err, with_type=True)}") from err
