"""What the prepare stage refuses before any export (issue 18): a path the run will write that cannot be written,
keep-fp32 patterns that match no module, a model without values; and the API's own inputs (`to_deploy(5)`, a `name`
that is another registry module's). Each CLI case exits 2 with one line and leaves the output folder as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from attndeploy.errors import UsageError
from tests.bad_input_helpers import TINY, TINY_INPUT, refuse_export, refused, run_main, tree, tiny


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refuse_export(monkeypatch)
    (tmp_path / "cal.npy").write_bytes(b"")  # never read: the path check comes first
    return tmp_path


@pytest.fixture
def immutable():
    """`immutable(path)` sets Linux's immutable attribute (skips where chattr cannot); cleared afterwards."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


INT8 = ["--precision", "int8", "--calib", "cal.npy"]


@pytest.mark.parametrize("blocker,options,words", [
    ("tiny.fp16.onnx/", ["--precision", "fp16"], ["must not be a directory", "tiny.fp16.onnx"]),
    ("tiny.int8.onnx/", INT8, ["must not be a directory", "tiny.int8.onnx"]),
    ("tiny.int8.rejected.onnx/", INT8, ["must not be a directory", "tiny.int8.rejected.onnx"]),
    ("tiny.rejected.onnx/", [], ["must not be a directory", "tiny.rejected.onnx"]),
    ("report.json/", [], ["must not be a directory", "report.json"]),
    ("build_engine.sh/", [], ["must not be a directory", "build_engine.sh"]),
    ("triton", [], ["output directory must be writable", "not a directory"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_path_the_run_writes_is_checked_before_any_export(blocker, options, words, scratch, capsys):
    out = scratch / "out"
    out.mkdir()
    (out / blocker).mkdir() if blocker.endswith("/") else (out / blocker).write_text("in the way")
    before = tree(out)
    refused(capsys, ["export", TINY, *TINY_INPUT, *options, "--out", "out", "--json"], *words)
    assert tree(out) == before


def test_an_immutable_fp16_file_is_refused_before_any_export(scratch, immutable, capsys):
    out = scratch / "out"
    out.mkdir()
    (out / "tiny.fp16.onnx").write_bytes(b"old")
    immutable(out / "tiny.fp16.onnx")
    refused(capsys, ["export", TINY, *TINY_INPUT, "--precision", "fp16", "--out", "out"],
            "output file must be replaceable", "tiny.fp16.onnx")
    assert tree(out) == ["tiny.fp16.onnx"]


def test_the_bundle_paths_are_not_checked_without_a_bundle(scratch, capsys):
    (scratch / "out" / "build_engine.sh").mkdir(parents=True)
    with pytest.raises(AssertionError, match="an export started"):
        run_main(capsys, "export", TINY, *TINY_INPUT, "--out", "out", "--no-bundle")


def test_an_out_folder_root_cannot_write_is_refused(scratch, capsys):
    """os.access says yes to root everywhere; /proc refuses the probe file."""
    refused(capsys, ["export", TINY, *TINY_INPUT, "--out", "/proc/attndeploy-out"], "output directory must be writable")


def test_output_paths_list_the_engine_files_and_the_detector_files():
    from attndeploy.pipeline.stages.early_checks import output_paths
    from attndeploy.settings import EngineSettings, ExportSettings

    settings = ExportSettings.create("cbam", None, None, out_dir=Path("o"), precision="fp16", report=True,
                                     engine=EngineSettings(timing_cache=Path("t.cache")))
    names = [str(p) for p in output_paths(settings, "cbam", detector=True)]
    assert names == ["o/cbam.onnx", "o/cbam.rejected.onnx", "o/cbam.fp16.onnx", "o/cbam.fp16.rejected.onnx",
                     "o/report.json", "o/cbam.fp16.engine", "o/cbam.fp16.engine.json", "t.cache",
                     "o/build_engine.sh", "o/triton/cbam/config.pbtxt", "o/labels.txt", "o/metadata.json"]


# --keep-fp32 ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns,bad", [("ChannelGate.mlpp", "ChannelGate.mlpp"), ("SpatialGate.*,chanelgate", "chanelgate"),
                                          ("*.softmaxx", "*.softmaxx")])
def test_keep_fp32_patterns_that_match_no_module_are_refused_before_export(patterns, bad, scratch, capsys):
    line = refused(capsys, ["export", "cbam", "--precision", "fp16", "--keep-fp32", patterns, "--out", "out"],
                   f"pattern {bad!r} matches no module of the model", "ChannelGate.mlp.0")
    assert "SpatialGate.spatial.conv" in line
    assert not (scratch / "out").exists()


@pytest.mark.parametrize("patterns", ["ChannelGate.mlp", "SpatialGate.*", "*.sigmoid", "mlp.0", "<root>",
                                      "ChannelGate.mlp.[0-3]", "*.conv"])
def test_keep_fp32_patterns_a_node_can_carry_reach_the_export(patterns, scratch, capsys):
    with pytest.raises(AssertionError, match="an export started"):
        run_main(capsys, "export", "cbam", "--precision", "fp16", "--keep-fp32", patterns, "--out", "out")


class _CallsDeep(nn.Module):
    """The root calls a grandchild directly (TorchScript names a node's scope by the call stack) and `head` calls the
    activation it shares with `block` (as ultralytics' `Conv.default_act`): its nodes are `head.1`'s."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.ReLU()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 1), act)
        self.head = nn.Sequential(nn.Conv2d(4, 2, 1), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.block[0](x)), dim=1)


@pytest.mark.parametrize("make", [lambda: _CallsDeep(), lambda: __import__("attndeploy").create("cbam", channels=16)],
                         ids=["calls-deep", "cbam"])
def test_every_label_of_the_exported_graph_passes_the_early_check(make, tmp_path):
    """No false refusal: every label a node of the real graph carries is a pattern the early check accepts."""
    import onnx

    import attndeploy
    from attndeploy.convert import to_deploy
    from attndeploy.pipeline.stages.early_checks import require_patterns_can_match
    from attndeploy.precision.policy import node_labels

    model = make()
    shape = (1, 3, 8, 8) if isinstance(model, _CallsDeep) else (1, 16, 8, 8)
    res = attndeploy.export(model, shape, tmp_path / "m.onnx", simplify=False)
    labels = {label for node in onnx.load(str(res.onnx_path)).graph.node for label in node_labels(node)}
    assert len(labels) > 3
    require_patterns_can_match(sorted(labels), to_deploy(model))
    with pytest.raises(UsageError, match="matches no module"):
        require_patterns_can_match(["block.2"], to_deploy(model))


# the Python API ---------------------------------------------------------------------------------------------------

def test_a_model_on_the_meta_device_is_a_usage_error(tmp_path, monkeypatch):
    import attndeploy

    refuse_export(monkeypatch)
    with torch.device("meta"):
        model = nn.Conv2d(3, 4, 3)
    with pytest.raises(UsageError, match="weights must hold values.*2 on the meta device"):
        attndeploy.export(model, (1, 3, 16, 16), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="example must hold values"):
        attndeploy.export(tiny(), torch.empty(1, 3, 16, 16, device="meta"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [5, None, "cbam", [nn.ReLU()]])
def test_to_deploy_takes_a_module(value):
    import attndeploy

    with pytest.raises(UsageError, match="to_deploy takes a PyTorch model: expected an nn.Module, got"):
        attndeploy.to_deploy(value)


def test_a_name_names_files_and_never_picks_another_modules_spec(tmp_path):
    """An ECA exported with name='acmix' is judged as an ECA (its own shape rule), written as acmix.onnx."""
    import attndeploy
    from attndeploy.sources import resolve_source

    eca = attndeploy.create("eca", channels=16)
    assert resolve_source(eca, {}, None, 0, "acmix").spec is attndeploy.get_spec("eca")
    assert resolve_source(nn.ReLU(), {}, None, 0, "acmix").spec is None
    res = attndeploy.export(eca, (1, 16, 8, 8), tmp_path / "acmix.onnx", name="acmix")
    assert res.name == "acmix" and res.onnx_path == tmp_path / "acmix.onnx"
    assert res.evidence["shape_rule"].startswith(attndeploy.get_spec("eca").rule.describe())
    assert attndeploy.get_spec("acmix").rule.describe() != attndeploy.get_spec("eca").rule.describe()
