"""Stage `write`: each graph to its file (`.rejected.onnx` when a check failed), atomically, with its metadata.

The counterpart left by an earlier run (the rejected file of a graph that now passes, or
the reverse) is removed.
"""

from __future__ import annotations

import onnx

from attndeploy.fileio import write_bytes_atomic
from attndeploy.pipeline.paths import rejected_path, written_path
from attndeploy.pipeline.state import PipelineState


def _with_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    """`proto` with the adapter's metadata (ultralytics reads `names`, `stride`, `imgsz` ... back) set."""
    if not metadata:
        return proto
    tagged = onnx.ModelProto()
    tagged.CopyFrom(proto)
    onnx.helper.set_model_props(tagged, {**{p.key: p.value for p in proto.metadata_props}, **metadata})
    return tagged


def write(state: PipelineState) -> None:
    metadata = state.adapter.metadata if state.adapter else {}
    for graph in state.graphs:
        final = written_path(state, graph)
        stale = rejected_path(graph.path) if final == graph.path else graph.path
        stale.unlink(missing_ok=True)
        write_bytes_atomic(final, _with_metadata(graph.proto, metadata).SerializeToString())
