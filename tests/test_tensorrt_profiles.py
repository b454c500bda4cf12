"""One TensorRT optimization profile from the ONNX model's dynamic axes (no TensorRT needed)."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.runtimes.feeds import InputProfile, check_in_profile
from attndeploy.tensorrt.profiles import Profile, derive_profile, model_inputs


def model_with_input(dims, name="input", extra_inputs=()) -> onnx.ModelProto:
    """Identity over one (or more) float inputs; `dims` entries are ints or symbolic names."""
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in extra_inputs]
    nodes = [helper.make_node("Identity", [i.name], [f"out_{i.name}"]) for i in inputs]
    outputs = [helper.make_tensor_value_info(f"out_{i.name}", TensorProto.FLOAT, None) for i in inputs]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs))


DYNAMIC = ["N", 64, "H", "W"]


def test_static_model_needs_no_example():
    profile = derive_profile(model_with_input([1, 64, 56, 56]))
    assert profile.inputs == (InputProfile("input", (1, 64, 56, 56), (1, 64, 56, 56), (1, 64, 56, 56)),)


def test_defaults_from_dynamic_axes():
    p = derive_profile(model_with_input(DYNAMIC), (1, 64, 56, 56))["input"]
    assert (p.min, p.opt, p.max) == ((1, 64, 14, 14), (1, 64, 56, 56), (4, 64, 112, 112))
    p = derive_profile(model_with_input(DYNAMIC), "8x64x30x20")["input"]
    assert (p.min, p.opt, p.max) == ((1, 64, 7, 5), (8, 64, 30, 20), (16, 64, 60, 40))


def test_defaults_respect_the_module_spatial_rule():
    spd = attndeploy.get_spec("spd")
    p = derive_profile(model_with_input(DYNAMIC), (1, 64, 10, 6), hw_multiple=spd.hw_multiple)["input"]
    assert p.min == (1, 64, 2, 2) and all(d % 2 == 0 for d in p.min[2:] + p.max[2:])
    acmix = attndeploy.get_spec("acmix")
    p = derive_profile(model_with_input(DYNAMIC), (1, 64, 8, 8), min_hw=acmix.min_hw)["input"]
    assert p.min == (1, 64, 4, 4)


def test_defaults_cover_the_parity_sweep():
    spec = attndeploy.get_spec("cbam")
    p = derive_profile(model_with_input(DYNAMIC), spec.example_shape)["input"]
    assert all(p.contains(s) for s in spec.parity_shapes())


def test_real_export_dynamic_axes(tmp_path):
    res = attndeploy.export("cbam", None, tmp_path / "cbam.onnx", opset=17)
    model = onnx.load(res.onnx_path)
    assert model_inputs(model) == {"input": (None, 64, None, None)}
    p = derive_profile(res.onnx_path, res.input_shape)["input"]
    assert p.opt == res.input_shape and p.min[1] == p.max[1] == 64


def test_overrides_as_strings_tuples_and_mappings():
    model = model_with_input(DYNAMIC)
    p = derive_profile(model, (1, 64, 56, 56), min="1x64x8x8", max=(8, 64, 128, 128))["input"]
    assert (p.min, p.opt, p.max) == ((1, 64, 8, 8), (1, 64, 56, 56), (8, 64, 128, 128))
    p = derive_profile(model, opt={"input": "2x64x32x32"})["input"]  # opt alone fills the example
    assert (p.min, p.opt, p.max) == ((1, 64, 8, 8), (2, 64, 32, 32), (4, 64, 64, 64))


def test_two_inputs_need_a_mapping():
    model = model_with_input(DYNAMIC, extra_inputs=[("grid", ["N", "H", "W", 2])])
    profile = derive_profile(model, {"input": (1, 64, 16, 16), "grid": (1, 16, 16, 2)})
    assert [p.name for p in profile.inputs] == ["input", "grid"]
    assert profile["grid"].max == (4, 32, 32, 2)  # rank-4 but not NCHW spatial: 2x
    with pytest.raises(UsageError, match="needs a model with one input"):
        derive_profile(model, (1, 64, 16, 16))
    with pytest.raises(UsageError, match="names inputs the model does not have"):
        derive_profile(model, {"input": (1, 64, 16, 16), "grid": (1, 16, 16, 2)}, max={"gird": (1, 1, 1, 2)})


@pytest.mark.parametrize("kwargs, message", [
    (dict(min="1x64x64x64"), "min <= opt <= max"),
    (dict(max="1x64x32x32"), "min <= opt <= max"),
    (dict(opt="1x64x56"), "rank"),
    (dict(min="1x32x8x8"), "must equal the model's static dim"),
    (dict(max="4x64x100x100x1"), "rank"),
    (dict(min="1x64x0x8"), "positive"),
    (dict(min="1x64xHx8"), "--min must be positive integers"),
])
def test_invalid_profiles(kwargs, message):
    with pytest.raises(UsageError, match=message):
        derive_profile(model_with_input(DYNAMIC), (1, 64, 56, 56), **kwargs)


def test_spatial_rule_applies_to_overrides():
    with pytest.raises(UsageError, match="multiple of 2"):
        derive_profile(model_with_input(DYNAMIC), (1, 64, 56, 56), min="1x64x7x8", hw_multiple=2)


def test_missing_or_junk_model(tmp_path):
    with pytest.raises(UsageError, match="must exist"):
        derive_profile(tmp_path / "none.onnx", (1, 64, 8, 8))
    (tmp_path / "junk.onnx").write_bytes(b"\x07junk")
    with pytest.raises(UsageError, match="ONNX model"):
        derive_profile(tmp_path / "junk.onnx", (1, 64, 8, 8))


def test_example_errors():
    with pytest.raises(UsageError, match="dynamic dims: an example shape or --opt is needed"):
        derive_profile(model_with_input(DYNAMIC))
    with pytest.raises(UsageError, match="static dim"):
        derive_profile(model_with_input(DYNAMIC), (1, 32, 56, 56))
    with pytest.raises(UsageError, match="rank"):
        derive_profile(model_with_input(DYNAMIC), (1, 64, 56))


def test_check_in_profile_and_round_trip():
    profile = derive_profile(model_with_input(DYNAMIC), (1, 64, 56, 56))
    check_in_profile("input", (2, 64, 43, 29), profile["input"])
    with pytest.raises(UsageError, match=r"dim 2: 113 not in \[14, 112\]"):
        check_in_profile("input", (1, 64, 113, 56), profile["input"])
    with pytest.raises(UsageError, match="rank"):
        check_in_profile("input", (1, 64, 56), profile["input"])
    assert Profile.from_dict(profile.to_dict()) == profile
    with pytest.raises(UsageError, match="unknown profile input"):
        profile["x"]
