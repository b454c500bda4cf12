"""Model sources, checkpoints and recipes: every bad input is a `UsageError` naming the rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.loading import load_model, load_weights, resolve_factory
from attndeploy.nets.host import HostNet

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture()
def user_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "user_net.py", """
        import torch.nn as nn

        def build_model(channels=4):
            return nn.Sequential(nn.Conv2d(3, channels, 3), nn.BatchNorm2d(channels))

        def make_tiny():
            return nn.Conv2d(3, 2, 1)

        def not_a_model():
            return 3

        NUMBER = 7
        """)


def test_module_factory_spec_builds_the_host() -> None:
    model = load_model("attndeploy.nets.host:build_host", {"attn": "se", "width": 16})
    assert isinstance(model, HostNet) and model.attn_name == "se" and model.width == 16


def test_file_spec_with_and_without_factory(user_file: Path) -> None:
    assert isinstance(load_model(str(user_file), {"channels": 6})[0], nn.Conv2d)  # build_model by default
    assert load_model(f"{user_file}:make_tiny").out_channels == 2


@pytest.mark.parametrize("source, rule", [
    ("no_such_pkg_for_attndeploy.models:build", "cannot import the model module"),
    ("attndeploy.nets.host:no_such_factory", "has no attribute 'no_such_factory'"),
    ("attndeploy.nets.host:DOWNSAMPLING", "must be callable"),
    ("attndeploy.nets.host", "has no attribute 'build_model'"),
    ("attndeploy.nets.host:", "a model source is"),
    ("", "a model source is"),
    ("missing/dir/net.py:build", "the model file must exist"),
])
def test_bad_factory_specs(source: str, rule: str) -> None:
    with pytest.raises(UsageError, match=rule.replace("(", r"\(")) as info:
        resolve_factory(source)
    assert info.value.expected is not None


def test_factory_returning_no_module_or_failing(user_file: Path) -> None:
    with pytest.raises(UsageError, match="must return an nn.Module") as info:
        load_model(f"{user_file}:not_a_model")
    assert info.value.actual == "int"
    with pytest.raises(UsageError, match="fails when called with kwargs"):
        load_model(f"{user_file}:make_tiny", {"width": 3})
    broken = _write(user_file.with_name("broken.py"), "import no_such_module_for_attndeploy\n")
    with pytest.raises(UsageError, match="fails on import"):
        load_model(f"{broken}:build")
    empty = _write(user_file.with_name("empty.py"), "X = 1\n")
    with pytest.raises(UsageError, match="has no attribute 'build_model'") as missing:
        load_model(str(empty))
    assert "build_model" in missing.value.hint


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "module."])
def test_checkpoint_layouts_load(wrap: str, tmp_path: Path) -> None:
    source = _tiny()
    state = source.state_dict()
    if wrap == "module.":
        state = {f"module.{k}": v for k, v in state.items()}
    obj = state if wrap in ("raw", "module.") else {wrap: state, "epoch": 3}
    torch.save(obj, tmp_path / "w.pt")
    target = load_weights(_tiny(), tmp_path / "w.pt")
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k


def test_checkpoint_mismatch_lists_keys_and_shapes(tmp_path: Path) -> None:
    state = _tiny().state_dict()
    state.pop("0.weight")
    state.pop("1.running_mean")
    state["extra.weight"] = torch.zeros(1)
    state["2.weight"] = torch.zeros(5, 4, 1, 1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(UsageError, match="does not match the model") as info:
        load_weights(_tiny(), tmp_path / "w.pt")
    actual = str(info.value.actual)
    assert "missing keys 2 (0.weight, 1.running_mean)" in actual and "unexpected keys 1 (extra.weight)" in actual
    assert "shape mismatches 1 (2.weight (5, 4, 1, 1) vs model (2, 4, 1, 1))" in actual


class _Config:
    """Not a tensor: a checkpoint holding it needs arbitrary unpickling."""

    lr = 0.1


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": _tiny().state_dict(), "config": _Config()}, tmp_path / "w.pt")
    with pytest.raises(UsageError, match="weights_only=True") as info:
        load_weights(_tiny(), tmp_path / "w.pt")
    assert "_Config" in str(info.value.actual) and "torch.save(model.state_dict()" in info.value.hint
    torch.save(_tiny(), tmp_path / "whole.pt")  # a pickled module is refused too
    with pytest.raises(UsageError, match="refused"):
        load_weights(_tiny(), tmp_path / "whole.pt")


def test_unreadable_or_wrong_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read the checkpoint"):
        load_weights(_tiny(), tmp_path / "junk.pt")
    torch.save({"optimizer": {"lr": 1}, "epoch": 2}, tmp_path / "opt.pt")
    with pytest.raises(UsageError, match="hold one under 'state_dict' or 'model'"):
        load_weights(_tiny(), tmp_path / "opt.pt")
    with pytest.raises(UsageError, match="must exist"):
        load_weights(_tiny(), tmp_path / "absent.pt")


def test_wrong_rank_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="must be 4-D"):  # the registry's rule
        attndeploy.export("se", (1, 64, 56), tmp_path / "se.onnx")
    host = load_model("attndeploy.nets.host:build_host", {"attn": "se"})
    with pytest.raises(UsageError, match=r"must be \(N, C, H, W\): the model's first layer is a Conv2d"):
        attndeploy.export(host, torch.randn(3, 64, 64), tmp_path / "host.onnx")


