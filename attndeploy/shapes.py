"""Input shapes: parsing `1x64x56x56` and the parity sweep around an example shape."""

from __future__ import annotations

from attndeploy.errors import UsageError, require

Shape = tuple[int, ...]


def parse_shape(text: str) -> Shape:
    """`"1x64x56x56"` -> `(1, 64, 56, 56)`; a malformed string raises `UsageError`."""
    parts = text.lower().replace("×", "x").split("x")
    if not all(p.strip().isdigit() for p in parts):
        raise UsageError("--input must be positive integers joined by 'x'", "e.g. 1x64x56x56", repr(text))
    shape = tuple(int(p) for p in parts)
    require(all(d > 0 for d in shape), "--input dimensions must be positive", "every dim >= 1", text)
    return shape


def format_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def sweep_shapes(example: Shape, hw_multiple: int = 1, min_hw: int = 1) -> list[Shape]:
    """Three shapes other than `example` (N, C, H, W) for dynamic-axes parity.

    Batch > 1 at the example H, W; odd H and W (odd multiples of `hw_multiple`); a
    larger batch with a non-square, non-divisible H, W. Inputs that are not 4-D get
    the batch variants only.
    """
    if len(example) != 4:
        n, rest = example[0], tuple(example[1:])
        return [(n + 1, *rest), (n + 2, *rest)]
    n, c, h, w = example
    m = hw_multiple

    def fit(size: int, odd: bool) -> int:
        units = max(size // m, -(-min_hw // m), 1)
        if odd and units % 2 == 0:
            units += 1
        return units * m

    candidates = [
        (n + 1, c, h, w),
        (1, c, fit(h * 3 // 4, odd=True), fit(w // 2 + 1, odd=True)),
        (n + 2, c, fit(h // 3 + 2, odd=False), fit(w + w // 4 + 1, odd=True)),
    ]
    return [s for s in candidates if s != tuple(example)]
