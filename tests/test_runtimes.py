"""Runners behind one interface, and `attndeploy run`."""

import numpy as np
import pytest
import torch

import attndeploy
from attndeploy.cli.main import main
from attndeploy.cli.run_backend import make_runner
from attndeploy.errors import UsageError
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner
from attndeploy.runtimes.torch_runner import TorchRunner
from attndeploy.tensorrt.runner import TensorRTRunner


@pytest.fixture(scope="module")
def se_onnx(tmp_path_factory):
    model = attndeploy.randomize_(attndeploy.create("se"))
    res = attndeploy.export(model, (1, 64, 56, 56), tmp_path_factory.mktemp("se") / "se.onnx", opset=17)
    return model, res.onnx_path


def test_onnxruntime_and_torch_runners_agree(se_onnx):
    model, path = se_onnx
    x = np.random.default_rng(1).standard_normal((2, 64, 9, 13)).astype(np.float32)
    with OnnxRuntimeRunner(path) as ort_runner, TorchRunner(model) as torch_runner:
        got, ref = ort_runner.infer({"input": x}), torch_runner.infer({"input": torch.from_numpy(x)})
    assert list(got) == list(ref) == ["output"]
    np.testing.assert_allclose(got["output"], ref["output"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("feeds,message", [
    ({"x": np.zeros((1, 64, 4, 4), np.float32)}, "exactly the model's inputs: expected input, got x"),
    ({"input": np.zeros((1, 64, 4, 4))}, "dtype: expected float32, got float64"),
    ({"input": np.zeros((1, 32, 4, 4), np.float32)}, "dim 1 is static in the model: expected 64, got 32"),
    ({"input": np.zeros((64, 4, 4), np.float32)}, "rank: expected rank 4, got rank 3"),
])
def test_onnxruntime_runner_checks_feeds(se_onnx, feeds, message):
    with OnnxRuntimeRunner(se_onnx[1]) as runner, pytest.raises(UsageError, match=message):
        runner.infer(feeds)


def test_bound_checks_the_feeds_once_and_returns_the_bare_call(se_onnx):
    x = np.random.default_rng(2).standard_normal((1, 64, 7, 7)).astype(np.float32)
    runner = OnnxRuntimeRunner(se_onnx[1])
    with pytest.raises(RuntimeError, match="before activate"):
        runner.bound({"input": x})
    with runner:
        with pytest.raises(UsageError, match="dtype"):
            runner.bound({"input": x.astype(np.float64)})  # refused when bound, not on each call
        call = runner.bound({"input": x})
        np.testing.assert_array_equal(call()["output"], runner.infer({"input": x})["output"])


def test_corrupt_onnx_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a model")
    with pytest.raises(UsageError, match="onnxruntime must be able to load the model"):
        OnnxRuntimeRunner(bad).activate()


def test_backend_choice_errors(se_onnx, tmp_path):
    with pytest.raises(UsageError, match="did you mean 'onnxruntime-cpu'"):
        make_runner("onnxruntime-cpus", se_onnx[1])
    with pytest.raises(UsageError, match="tensorrt backend runs engine files"):
        make_runner("tensorrt", se_onnx[1])
    with pytest.raises(UsageError, match="model file must exist"):
        make_runner("onnxruntime-cpu", tmp_path / "missing.onnx")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    runner = make_runner("tensorrt", engine)  # not activated: TensorRT is only needed then
    assert isinstance(runner, TensorRTRunner) and isinstance(make_runner("onnxruntime-cpu", se_onnx[1]), Runner)


def test_run_command_prints_shapes_and_timing(se_onnx, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((3, 64, 5, 7), np.float32))
    assert main(["run", str(se_onnx[1]), "--input", str(x), "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "3x64x5x7" in out and "median" in out
    assert main(["run", str(se_onnx[1]), "--runs", "2"]) == 2
    assert "needs a shape for the model's dynamic dims" in capsys.readouterr().err


def test_export_engine_without_tensorrt_exits_2_with_install_hint(tmp_path, capsys):
    try:
        import tensorrt

        if hasattr(tensorrt, "Builder"):
            pytest.skip("TensorRT is installed here: this checks the message on machines without it")
    except ImportError:
        pass
    assert main(["export", "cbam", "--engine", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "pip install tensorrt" in err
    assert not (tmp_path / "out").exists()
