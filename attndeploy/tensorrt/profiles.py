"""One TensorRT optimization profile (min / opt / max per input) derived from the ONNX model.

Defaults for a dynamic dim of an (N, C, H, W) input, given the example shape:

| dim   | min                                          | opt     | max                 |
|-------|----------------------------------------------|---------|---------------------|
| N     | 1                                            | example | max(2·example, 4)   |
| H, W  | max(example // 4, hw_multiple, min_hw), on   | example | 2·example           |
|       | a multiple of hw_multiple                    |         |                     |
| other | 1                                            | example | 2·example           |

The maxima cover the parity sweep of `ShapeRule.sweep` (batch up to
N + 2, H and W up to ~1.3x). Memory grows with the maxima ((H·W)² for non-local
attention), so keep them modest and override them when deploying bigger inputs.
Static dims are fixed: min = opt = max = the model's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from attndeploy.errors import UsageError, require
from attndeploy.runtimes.feeds import InputProfile
from attndeploy.shapes import Shape, format_shape

Dims = tuple[int | None, ...]  # None = dynamic
ShapeLike = Shape | Sequence[int] | str
Override = ShapeLike | Mapping[str, ShapeLike] | None
ShapeRule = tuple[int, int]  # (hw_multiple, min_hw): the module's rule for H and W (`ModuleSpec`)


@dataclass(frozen=True)
class Profile:
    """One optimization profile: an `InputProfile` per graph input, in graph order."""

    inputs: tuple[InputProfile, ...]

    def __getitem__(self, name: str) -> InputProfile:
        for p in self.inputs:
            if p.name == name:
                return p
        raise UsageError("unknown profile input", "one of " + ", ".join(p.name for p in self.inputs), repr(name))

    def to_dict(self) -> dict[str, dict[str, list[int]]]:
        return {p.name: p.to_dict() for p in self.inputs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Sequence[int]]]) -> Profile:
        return cls(tuple(InputProfile(name, tuple(v["min"]), tuple(v["opt"]), tuple(v["max"]))
                         for name, v in data.items()))


def parse_dims(text: str, flag: str = "--opt") -> Shape:
    """`"1x64x32x32"` -> `(1, 64, 32, 32)`; `UsageError` names `flag` when malformed."""
    parts = text.lower().replace("×", "x").split("x")
    if not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"{flag} must be positive integers joined by 'x'", "e.g. 1x64x32x32", repr(text))
    shape = tuple(int(p) for p in parts)
    require(all(d > 0 for d in shape), f"{flag} dimensions must be positive", "every dim >= 1", text)
    return shape


def model_inputs(model: onnx.ModelProto) -> dict[str, Dims]:
    """Graph inputs that are not initializers -> their dims (`None` where symbolic or unknown)."""
    initializers = {t.name for t in model.graph.initializer}
    out: dict[str, Dims] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        out[value.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    return out


def _shape(value: ShapeLike, flag: str) -> Shape:
    return parse_dims(value, flag) if isinstance(value, str) else tuple(int(d) for d in value)


def _per_input(value: Override, names: Sequence[str], flag: str) -> dict[str, Shape]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        require(not unknown, f"{flag} names inputs the model does not have", "one of " + ", ".join(names), unknown)
        return {k: _shape(v, flag) for k, v in value.items()}
    require(len(names) == 1, f"{flag} as one shape needs a model with one input",
            "a mapping {input name: shape}", f"{len(names)} inputs {list(names)}")
    return {names[0]: _shape(value, flag)}


def read_onnx(onnx_path: Path) -> tuple[bytes, onnx.ModelProto]:
    """The file's bytes and the parsed model (external data not loaded); `UsageError` when missing or not ONNX."""
    require(onnx_path.is_file(), "the ONNX model must exist", "a readable .onnx file", str(onnx_path))
    data = onnx_path.read_bytes()
    try:
        return data, onnx.load_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise UsageError("the file must be an ONNX model", "a serialized onnx.ModelProto",
                         f"{onnx_path} ({type(err).__name__})") from err


def _fmt_dims(dims: Dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _round_down(size: int, multiple: int) -> int:
    return max(multiple, size // multiple * multiple)


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _default(axis: int, rank: int, example: int, hw_multiple: int, min_hw: int) -> tuple[int, int, int]:
    if axis == 0:
        return 1, example, max(2 * example, 4)
    if rank == 4 and axis in (2, 3):
        low = max(_round_down(example // 4, hw_multiple), _round_up(min_hw, hw_multiple))
        return min(low, example), example, 2 * example
    return 1, example, 2 * example


def _check(name: str, dims: Dims, lo: Shape, opt: Shape, hi: Shape, hw_multiple: int, min_hw: int) -> None:
    for label, shape in (("min", lo), ("opt", opt), ("max", hi)):
        require(len(shape) == len(dims), f"profile {label} shape of {name!r} must have the model input's rank",
                f"rank {len(dims)} like {_fmt_dims(dims)}",
                f"rank {len(shape)} {format_shape(shape)}")
        require(all(d >= 1 for d in shape), f"profile {label} dims of {name!r} must be positive", "every dim >= 1",
                format_shape(shape))
        for axis, (fixed, d) in enumerate(zip(dims, shape)):
            require(fixed is None or d == fixed, f"profile {label} dim {axis} of {name!r} must equal the model's "
                    "static dim", fixed, f"{d} in {format_shape(shape)}")
        if len(dims) == 4:
            for axis in (2, 3):
                if dims[axis] is None:
                    require(shape[axis] >= min_hw and shape[axis] % hw_multiple == 0,
                            f"profile {label} dim {axis} of {name!r} must be a multiple of {hw_multiple} and >= "
                            f"{min_hw} (the module's spatial rule)", f"a multiple of {hw_multiple}, >= {min_hw}",
                            f"{shape[axis]} in {format_shape(shape)}")
    for axis, (a, b, c) in enumerate(zip(lo, opt, hi)):
        require(a <= b <= c, f"profile of {name!r} must satisfy min <= opt <= max in every dim",
                "min <= opt <= max", f"dim {axis}: min {a}, opt {b}, max {c} "
                f"({format_shape(lo)} / {format_shape(opt)} / {format_shape(hi)})")


def derive_profile(
    model: onnx.ModelProto | str | Path,
    example_shape: ShapeLike | Mapping[str, ShapeLike] | None = None,
    *,
    min: Override = None,  # noqa: A002  (mirrors --min)
    opt: Override = None,
    max: Override = None,  # noqa: A002  (mirrors --max)
    hw_multiple: int = 1,
    min_hw: int = 1,
) -> Profile:
    """The profile for `model`'s inputs: defaults from the dynamic axes and `example_shape`, then overrides.

    `example_shape` (or `opt`) fills the dynamic dims; without either, a model with a
    dynamic input raises `UsageError`. `min` / `opt` / `max` override the defaults:
    a shape (`"1x64x32x32"` or a tuple) for a one-input model, or `{name: shape}`.
    Raises `UsageError` for a wrong rank, a dim that contradicts a static model dim,
    a spatial dim outside the module's rule, or min <= opt <= max failing anywhere.
    """
    proto = model if isinstance(model, onnx.ModelProto) else read_onnx(Path(model))[1]
    inputs = model_inputs(proto)
    names = list(inputs)
    require(bool(names), "the ONNX model must have a graph input", "at least one input", "none")
    mins, opts, maxs = (_per_input(v, names, f) for v, f in ((min, "--min"), (opt, "--opt"), (max, "--max")))
    examples = _per_input(example_shape, names, "--input")
    profiles = []
    for name, dims in inputs.items():
        example = opts.get(name) or examples.get(name)
        if example is None:
            require(all(d is not None for d in dims), f"input {name!r} has dynamic dims: an example shape or "
                    "--opt is needed", "e.g. --opt 1x64x56x56", _fmt_dims(dims))
            example = tuple(d for d in dims if d is not None)
        require(len(example) == len(dims), f"example shape of {name!r} must have the model input's rank",
                f"rank {len(dims)}", f"rank {len(example)} {format_shape(example)}")
        for axis, (fixed, e) in enumerate(zip(dims, example)):
            require(fixed is None or fixed == e, f"example dim {axis} of {name!r} must equal the model's static dim",
                    fixed, f"{e} in {format_shape(example)}")
        defaults = [(d, d, d) if d is not None else _default(axis, len(dims), e, hw_multiple, min_hw)
                    for axis, (d, e) in enumerate(zip(dims, example))]
        lo = mins.get(name, tuple(t[0] for t in defaults))
        best = opts.get(name, tuple(d if d is not None else e for d, e in zip(dims, example)))
        hi = maxs.get(name, tuple(t[2] for t in defaults))
        _check(name, dims, lo, best, hi, hw_multiple, min_hw)
        profiles.append(InputProfile(name, lo, best, hi))
    return Profile(tuple(profiles))
