"""What a bundle holds: every file under its folder with its size, for the report and the CLI's summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attndeploy.errors import require


def _temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


@dataclass(frozen=True)
class BundleFile:
    """One file: its path relative to the bundle folder (POSIX separators) and its size in bytes."""

    path: str
    bytes: int


def list_bundle(folder: Path) -> list[BundleFile]:
    """Every regular file under `folder` (symlinks and our hidden `.NAME.<pid>-x.tmp` files left out), by path."""
    folder = Path(folder)
    require(folder.is_dir(), "the bundle folder must exist", "a folder", str(folder))
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and not _temp(p.name)]
    return sorted((BundleFile(p.relative_to(folder).as_posix(), p.stat().st_size) for p in files),
                  key=lambda f: f.path)


def total_bytes(files: list[BundleFile]) -> int:
    return sum(f.bytes for f in files)


def describe_bundle(folder: Path) -> dict[str, object]:
    """`{"files": [{"path", "bytes"}, ...], "total_bytes": N}` for report.json."""
    files = list_bundle(folder)
    return {"files": [{"path": f.path, "bytes": f.bytes} for f in files], "total_bytes": total_bytes(files)}


def format_size(size: int) -> str:
    """`12345678` -> `"11.8 MiB"`."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def format_listing(files: list[BundleFile]) -> list[str]:
    """One line per file (`  path  size`) and a total line."""
    width = max((len(f.path) for f in files), default=0)
    return [f"  {f.path:<{width}}  {format_size(f.bytes):>10}" for f in files] + [
        f"  {'total':<{width}}  {format_size(total_bytes(files)):>10}"]
