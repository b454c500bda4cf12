"""Stage `write`: each candidate to its file (`.rejected.onnx` when a check failed), atomically, with its metadata.

The counterpart left by an earlier run (the rejected file of a graph that now passes, or
the reverse) is removed.
"""

from __future__ import annotations

import onnx

from attndeploy.fileio import write_bytes_atomic
from attndeploy.pipeline.candidate import Judged, rejected_path
from attndeploy.pipeline.model import PreparedModel


def _with_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    """`proto` with the adapter's metadata (ultralytics reads `names`, `stride`, `imgsz` ... back) set."""
    if not metadata:
        return proto
    tagged = onnx.ModelProto()
    tagged.CopyFrom(proto)
    onnx.helper.set_model_props(tagged, {**{p.key: p.value for p in proto.metadata_props}, **metadata})
    return tagged


def write(model: PreparedModel, graphs: list[Judged]) -> None:
    for judged in graphs:
        final, path = judged.written, judged.candidate.path
        stale = rejected_path(path) if final == path else path
        stale.unlink(missing_ok=True)
        write_bytes_atomic(final, _with_metadata(judged.candidate.proto, model.family.metadata).SerializeToString())
