"""Reading the user's files with bounds: nothing blocks, nothing larger than memory allows is read.

    require_regular_file(Path("cal.npy"), "--calib")        # a FIFO, socket or device: UsageError (it could block)
    array = read_array_file(Path("cal.npy"), "calibration")  # a .npy, or an .npz's first array, as stored
    images = read_image_folder(Path("imgs"), (640, 640), "calibration")   # (K, 3, 640, 640) float32 in [0, 1]
    array = tensor_values(tensor, "calibration")             # a tensor's values (not on the meta device)

An array file is recognised by its content (numpy's magic or a zip), its header is read
first and checked (a numeric dtype: no pickled object array, no bool or complex; every
dimension >= 1; the bytes, as float32, within `attndeploy.limits.memory_limit()`; the file
holding that many bytes), then exactly those bytes are read. An image's header is read
before its pixels: PIL's decompression-bomb guard (`Image.MAX_IMAGE_PIXELS`) refuses a
size past it. Every refusal is a `UsageError` naming the rule, the expected and the
actual value. numpy only; PIL and torch are imported where they are needed.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from attndeploy.errors import UsageError, first_line, require
from attndeploy.limits import check_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
NUMERIC_KINDS = "fiu"  # float, signed and unsigned int: what converts to float32 as numbers
NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"  # a zip starts with a local file header, or (empty) its directory end
_FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket",
               stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}


def file_kind(path: Path) -> str:
    """'a regular file', 'a folder', 'a named pipe' ... (symlinks followed); 'missing' when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((kind for test, kind in _FILE_KINDS.items() if test(mode)), "not a regular file")


def require_regular_file(path: Path, what: str, expected: str = "a regular file") -> None:
    """`UsageError` unless `path` is a regular file: a named pipe, socket or device could block a read forever."""
    kind = file_kind(path)
    require(kind != "missing", f"{what} must exist", expected, str(path))
    require(kind == "a regular file", f"{what} must be a regular file", expected,
            f"{path} ({kind}{': reading it could block' if kind not in ('a folder',) else ''})")


def _check_header(shape: tuple[int, ...], dtype: np.dtype, what: str, where: str) -> int:
    """The stored bytes of an array of `shape` and `dtype`, once both are checked (see the module docstring)."""
    require(not dtype.hasobject, f"{what} must be a plain numeric array", "a float or int .npy (numpy's format, no "
            "pickle)", f"{where}: a pickled object array", "pickles run code when loaded; they are never loaded")
    require(dtype.kind in NUMERIC_KINDS and dtype.fields is None, f"{what} must hold numbers",
            "a float or int array", f"{where}: dtype {dtype}")
    require(len(shape) >= 1 and all(d >= 1 for d in shape), f"{what} must not be empty", "every dimension >= 1",
            f"{where}: shape {shape}")
    count = math.prod(shape)
    check_bytes(count * max(dtype.itemsize, 4), f"{what} ({where}, shape {shape}, as float32)")
    return count * dtype.itemsize


def _read_npy(stream: IO[bytes], what: str, where: str) -> np.ndarray:
    """The array in a .npy `stream`: header checked, then exactly its bytes read."""
    try:
        version = np.lib.format.read_magic(stream)
        require(version in ((1, 0), (2, 0)), f"{what} must be a .npy of format 1.0 or 2.0", "numpy's np.save format",
                f"{where}: format {version[0]}.{version[1]}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(stream)
    except UsageError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise UsageError(f"{what} must be a readable .npy array", "numpy's np.save format",
                         f"{where}: {first_line(err)}") from err
    nbytes = _check_header(tuple(int(d) for d in shape), dtype, what, where)
    data = stream.read(nbytes)
    require(len(data) == nbytes, f"{what} must hold the bytes its header promises", f"{nbytes} bytes for shape "
            f"{tuple(shape)} {dtype}", f"{where}: {len(data)} bytes (a truncated file)")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def _read_npz(path: Path, what: str) -> np.ndarray:
    """The first array of an .npz (what `np.load(...)[files[0]]` reads), bounded like a .npy."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy") and not m.is_dir()]
            require(bool(members), f"{what} from an .npz needs an array in it", "an .npz holding at least one array",
                    f"{path}: no arrays ({len(archive.infolist())} other entries)")
            member = members[0]
            with archive.open(member) as stream:
                return _read_npy(stream, what, f"{path}[{member.filename[:-4]}]")
    except UsageError:
        raise
    # zipfile raises NotImplementedError for a compression method it cannot read, RuntimeError for encryption
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as err:
        raise UsageError(f"{what} must be a readable .npz archive", "numpy's np.savez format",
                         f"{path}: {first_line(err)}") from err


def read_array_file(path: Path, what: str) -> np.ndarray:
    """The array stored in the .npy or .npz (its first array) at `path`, read with bounds, dtype as stored."""
    require_regular_file(path, what, "a .npy/.npz file or a folder of images")
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(NPY_MAGIC))
            if head == NPY_MAGIC:
                stream.seek(0)
                return _read_npy(stream, what, str(path))
    except OSError as err:
        raise UsageError(f"{what} must be readable", "a readable .npy/.npz file", f"{path}: {err.strerror or err}"
                         ) from err
    require(head.startswith(ZIP_MAGIC),
            f"{what} must be a .npy/.npz array or an image folder", "numpy's .npy or .npz format",
            f"{path}: {'an empty file' if not head else f'a file starting with {head!r}'}")
    return _read_npz(path, what)


def _image_files(folder: Path, what: str) -> list[Path]:
    """The folder's entries with an image suffix, sorted; each must be a regular file (a folder named x.jpg is not)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise UsageError(f"{what} folder must be readable", "a readable folder of images",
                         f"{folder}: {err.strerror or err}") from err
    files = [Path(e.path) for e in entries if Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    require(bool(files), f"a {what} folder must hold images", f"files ending in {', '.join(IMAGE_SUFFIXES)}",
            f"none among the {len(entries)} entries of {folder}")
    for path in files:
        kind = file_kind(path)
        require(kind == "a regular file", f"every image in the {what} folder must be a regular file",
                "an image file", f"{path} ({kind})")
    return files


def _pil_open() -> Callable[..., Any]:
    """PIL's own `Image.open`. Once ultralytics is imported, `Image.open` is its wrapper, which on a file PIL cannot
    identify runs `check_requirements("pi-heif")` (a pip install where online) and retries: a bad image would then
    be reported as a missing module. The wrapper keeps PIL's function as its module's `_image_open`."""
    from PIL import Image

    opener = Image.open
    if getattr(opener, "__module__", "PIL.Image") != "PIL.Image":
        original = getattr(opener, "__globals__", {}).get("_image_open")
        if getattr(original, "__module__", "") == "PIL.Image":
            return cast(Callable[..., Any], original)
    return opener


def _decode(path: Path, hw: tuple[int, int], what: str) -> np.ndarray:
    """One image as (3, H, W) float32 in [0, 1]: its size checked against PIL's bomb guard before decoding."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open()(path) as image:
                rgb = image.convert("RGB").resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UsageError(f"every image in the {what} folder must pass PIL's decompression-bomb guard",
                         f"at most {limit} pixels", f"{path}: {first_line(err)}") from err
    except Exception as err:  # a corrupt file fails in its format plugin's own way (OSError, SyntaxError, ...)
        raise UsageError(f"every image in the {what} folder must decode", "a readable, complete image",
                         f"{path}: {first_line(err)}") from err
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0


def read_image_folder(folder: Path, hw: tuple[int, int], what: str) -> np.ndarray:
    """The folder's images decoded to RGB in [0, 1] and resized to `hw`: (K, 3, H, W) float32, K within memory."""
    files = _image_files(folder, what)
    check_bytes(len(files) * 3 * hw[0] * hw[1] * 4, f"{what}: {len(files)} image(s) at {hw[0]}x{hw[1]} as float32")
    return np.stack([_decode(path, hw, what) for path in files])


def check_tensor(tensor: Any, what: str) -> None:
    """`UsageError` unless `tensor` holds numbers numpy can read: not on the meta device, dense, a float16/32/64 or
    int dtype (bfloat16, complex and bool are refused)."""
    import torch

    require(tensor.device.type != "meta", f"{what} must hold values", "a tensor on the CPU or a GPU",
            "a tensor on the meta device (shapes only, no values)")
    require(tensor.layout == torch.strided, f"{what} must be a dense tensor", "torch.strided",
            str(tensor.layout), "tensor.to_dense()")
    numeric = tensor.dtype in (torch.float16, torch.float32, torch.float64) or not (
        tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool)
    require(numeric and not tensor.is_quantized, f"{what} must hold numbers numpy can read",
            "float32, float16, float64 or an int dtype", str(tensor.dtype),
            "tensor.float()" if tensor.dtype.is_floating_point else "")


def tensor_values(tensor: Any, what: str) -> np.ndarray:
    """A torch tensor's values as a numpy array (detached, on the CPU), once `check_tensor` passed."""
    check_tensor(tensor, what)
    return tensor.detach().cpu().numpy()


__all__ = ["IMAGE_SUFFIXES", "check_tensor", "file_kind", "read_array_file", "read_image_folder", "require_regular_file",
           "tensor_values"]
