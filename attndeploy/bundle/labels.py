"""A detector's class names (`labels.txt`) and metadata (a JSON sidecar) beside its graph and engine.

The metadata goes in its own file, never as a header inside an engine file: an engine
with bytes before TensorRT's plan is one DeepStream and `trtexec --loadEngine` cannot load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attndeploy.errors import UsageError, require
from attndeploy.fileio import dumps_strict, ensure_writable_dir, write_bytes_atomic

LABELS_FILE = "labels.txt"
METADATA_FILE = "metadata.json"


def ordered_names(names: Sequence[str] | Mapping[int, str]) -> list[str]:
    """Class names in index order: a list as is, or a mapping {index: name} (ultralytics' `model.names`) whose
    keys are 0..n-1. `UsageError` for a gap, an empty name, or a line break inside a name."""
    if isinstance(names, Mapping):
        keys = sorted(names)
        require(keys == list(range(len(keys))), "class indices must be 0..n-1 without gaps",
                f"0..{len(keys) - 1}", keys)
        ordered = [names[k] for k in keys]
    else:
        ordered = list(names)
    require(len(ordered) > 0, "a detector needs at least one class name", "one or more names", "none")
    bad = [n for n in ordered if not isinstance(n, str) or not n.strip() or "\n" in n or "\r" in n]
    require(not bad, "class names must be non-empty single-line strings", "one name per line", bad[:3])
    return ordered


def write_labels(out_dir: Path, names: Sequence[str] | Mapping[int, str]) -> Path:
    """Write `out_dir/labels.txt`, one class name per line in index order; returns its path."""
    text = "".join(f"{n}\n" for n in ordered_names(names))
    return write_bytes_atomic(ensure_writable_dir(Path(out_dir)) / LABELS_FILE, text.encode())


def write_metadata(out_dir: Path, metadata: Mapping[str, Any], filename: str = METADATA_FILE) -> Path:
    """Write `metadata` (str keys; JSON values, numpy scalars and tuples allowed) as `out_dir/<filename>`.

    Non-finite floats become "nan" / "inf" (`attndeploy.fileio.dumps_strict`); a value JSON
    cannot hold is a `UsageError` naming the key.
    """
    require(all(isinstance(k, str) for k in metadata), "metadata keys must be strings", "str keys",
            [k for k in metadata if not isinstance(k, str)][:3])
    require(filename.endswith(".json") and Path(filename).name == filename, "the metadata file must be a .json "
            "file name", "e.g. metadata.json", repr(filename))
    for key, value in metadata.items():
        try:
            dumps_strict(value)
        except (TypeError, ValueError) as err:
            raise UsageError("metadata values must be JSON values", "str, number, bool, None, list or dict",
                             f"{key!r}: {type(value).__name__} ({err})") from err
    text = dumps_strict(dict(metadata)) + "\n"
    return write_bytes_atomic(ensure_writable_dir(Path(out_dir)) / filename, text.encode())
