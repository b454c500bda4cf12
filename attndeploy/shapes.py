"""Input shapes: parsing `1x64x56x56` (one shape, a list, an image size) and printing them."""

from __future__ import annotations

from attndeploy.errors import UsageError, require
from attndeploy.limits import check_tensor_bytes

Shape = tuple[int, ...]


MAX_DIGITS = 18  # per dim: larger numbers are refused by the size check anyway


def parse_shape(text: str) -> Shape:
    """`"1x64x56x56"` -> `(1, 64, 56, 56)`; a malformed string raises `UsageError`.

    A float32 tensor of the shape must fit in half of this machine's memory
    (`attndeploy.limits.check_tensor_bytes`): a shape is only parsed to be allocated.
    """
    parts = [p.strip() for p in text.lower().replace("×", "x").split("x")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise UsageError("a shape must be positive integers joined by 'x'", "e.g. 1x64x56x56", repr(text))
    require(all(len(p.lstrip("0")) <= MAX_DIGITS for p in parts), "a shape's dims must be at most 18 digits",
            f"dims below 10**{MAX_DIGITS}", repr(text))
    shape = tuple(int(p) for p in parts)
    require(all(d > 0 for d in shape), "a shape's dimensions must be positive", "every dim >= 1", text)
    check_tensor_bytes(shape, f"a float32 tensor of shape {format_shape(shape)}")
    return shape


def parse_shapes(text: str) -> list[Shape]:
    """`"1x3x640x640,2x3x480x640"` -> `[(1, 3, 640, 640), (2, 3, 480, 640)]` (each as `parse_shape`)."""
    parts = [p for p in text.split(",") if p.strip()]
    require(bool(parts), "a list of shapes must name at least one", "e.g. 1x3x640x640,2x3x480x640", repr(text))
    return [parse_shape(p) for p in parts]


MAX_IMGSZ = 1 << 15


def parse_imgsz(text: str, option: str = "--imgsz") -> tuple[int, int]:
    """`"640"` -> (640, 640); `"480,640"` (or `480x640`) -> (480, 640): (H, W), as ultralytics' `imgsz`.

    Every part must be a size in 1..32768: `"640,"` (an empty part) is refused, not read as 640.
    A size that is no multiple of the model's stride is rounded up by the detector's adapter (as
    ultralytics does), which says so in the result's notes: the stride is known only once the model is built.
    """
    parts = [p.strip() for p in text.lower().replace("x", ",").split(",")]
    require(1 <= len(parts) <= 2 and all(p.isascii() and p.isdigit() and 0 < int(p) <= MAX_IMGSZ for p in parts),
            f"{option} must be one size or H,W, each in 1..{MAX_IMGSZ}", "e.g. 640 or 480,640", repr(text))
    return int(parts[0]), int(parts[-1])


def format_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)
