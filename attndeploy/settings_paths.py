"""The path and data checks behind the declared options (`attndeploy.settings_checks` re-exports them).

Each is `check(value, label) -> normalised value`; an output path is checked before any work,
creating nothing; an input path must exist (it is read where it is used, with bounds).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.errors import require
from attndeploy.fileio import check_output_file


def show(value: Any) -> str:
    """`value` as messages give it: its repr and its type."""
    return f"{value!r} ({type(value).__name__})"


def is_tensor(value: Any) -> bool:
    """A torch tensor, asked without importing torch."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def path(value: Any, option: str) -> Path:
    require(isinstance(value, (str, Path)) and str(value).strip() != "", f"{option} must be a path",
            "a file path", show(value))
    return Path(value).expanduser()


def optional_path(value: Any, option: str) -> Path | None:
    return None if value is None else path(value, option)


def paths(values: Any, option: str) -> tuple[Path, ...]:
    values = [values] if isinstance(values, (str, Path)) else values
    require(isinstance(values, (list, tuple)), f"{option} must be a list of paths", "e.g. ['libplugin.so']",
            show(values))
    return tuple(path(v, option) for v in values)


def out_path(value: Any, option: str = "out_path") -> Path | None:
    """A file path whose folder can be written and which is not a directory (checked before any work)."""
    if value is None:
        return None
    result = path(value, option)
    check_output_file(result)
    return result


def out_dir(value: Any, option: str = "out_dir") -> Path | None:
    """A folder that can be made and written (checked before any work, creating nothing)."""
    if value is None:
        return None
    result = path(value, option)
    require(not result.exists() or result.is_dir(), f"{option}: the output folder must be a directory",
            "a folder path", f"{result} (a file)")
    check_output_file(result / ".attndeploy-probe")
    return result


def data(value: Any, option: str) -> Any:
    """Input data: an array, a tensor with values (`attndeploy.reading.check_tensor`), or a path to a .npy/.npz file
    or a folder of images (read, with bounds, by the prepare stage)."""
    if value is None:
        return None
    require(isinstance(value, (np.ndarray, str, Path)) or is_tensor(value), f"{option} must be data or a path",
            "a (K, C, H, W) array, a .npy/.npz file or a folder of images", show(value))
    if isinstance(value, (str, Path)):
        found = Path(value).expanduser()
        require(found.exists(), f"{option} must exist", "an existing file or folder", str(value))
        require(found.is_file() or found.is_dir(), f"{option} must be a regular file or a folder",
                "a .npy/.npz file or a folder of images", f"{value} (a pipe, socket or device: reading it could block)")
    if is_tensor(value):
        from attndeploy.reading import check_tensor

        check_tensor(value, option)
    return value

