"""`attndeploy bench`: argument checks (exit 2), the measurement machinery, the JSON and table.

Runs are tiny (8x8 inputs, a few rounds, one thread) so the file stays fast; the numbers
themselves are not asserted, only that every figure is there and consistent.
"""

import json
import os

import numpy as np
import pytest
import torch

import attndeploy
from attndeploy.bench import plan_bench, run_bench
from attndeploy.bench.floor import copy_bandwidth, floor_bytes
from attndeploy.bench.memory import RssProbe, rss_probe_unavailable, torch_alloc_peak
from attndeploy.bench.report import format_markdown, format_table, summary_rows
from attndeploy.bench.timing import percentile, summarize, time_interleaved
from attndeploy.errors import UsageError
from attndeploy.quiet import quiet

CPU_BACKENDS = ["eager-reference", "eager-deploy", "onnxruntime", "onnxruntime-reference"]
TINY = {"warmup": 1, "iters": 3, "max_seconds": 5.0, "threads": 1, "copy_mib": 4}


# -- bad input: UsageError naming rule, expected, actual; exit 2 ------------------------------------------------

def test_unknown_module_lists_and_suggests():
    with pytest.raises(UsageError, match=r"unknown module 'cbma'.*coordatt.*did you mean 'cbam'"):
        plan_bench(["cbma"])


def test_unknown_backend_lists_and_suggests():
    with pytest.raises(UsageError, match=r"unknown backend 'onnxruntim'.*eager-deploy.*did you mean 'onnxruntime'"):
        plan_bench(["se"], backends=["onnxruntim"])


@pytest.mark.parametrize("name,shape,words", [
    ("se", (1, 32, 56, 56), ["channels", "expected 64", "got 32"]),
    ("spd", (1, 64, 55, 56), ["divisible by 2", "H=55"]),
    ("acmix", (1, 64, 2, 2), ["H >= 4", "H=2"]),
    ("se", (1, 64, 56), ["4-D"]),
])
def test_shape_that_does_not_fit(name, shape, words):
    with pytest.raises(UsageError) as info:
        plan_bench([name], input_shape=shape)
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"iters": 0}, {"warmup": -1}, {"batches": [0]}, {"opset": 12},
                                    {"max_seconds": 0}, {"ort_level": "max"}])
def test_bad_settings(kwargs):
    with pytest.raises(UsageError, match="expected"):
        plan_bench(["se"], **kwargs)


@pytest.mark.parametrize("args,words", [
    (["bench", "cbma"], ["unknown module 'cbma'", "did you mean 'cbam'"]),
    (["bench", "se", "--backends", "onnxruntime,tensorrtx"], ["unknown backend 'tensorrtx'", "did you mean"]),
    (["bench", "se", "--input", "1x32x56x56"], ["expected 64", "got 32"]),
    (["bench", "se", "--batch", "1,x"], ["--batch", "e.g. 1,8"]),
    (["bench", "se", "--threads", "0"], ["--threads"]),
])
def test_cli_bad_input_exits_2(cli, capsys, args, words):
    assert cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and all(w in err for w in words), err


def test_plot_without_matplotlib_is_a_usage_error(cli, capsys, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli(["bench", "se", "--plot", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot needs the matplotlib package" in err and "not installed" in err
    assert not (tmp_path / "b.png").exists()


def test_backend_not_installed_is_skipped_with_reason():
    plan = plan_bench(["se"], backends=["eager-deploy", "tensorrt", "onnxruntime-cuda"])
    if "tensorrt" not in plan.skipped or "onnxruntime-cuda" not in plan.skipped:
        pytest.skip("this machine has TensorRT / onnxruntime-gpu")
    assert plan.runnable == ["eager-deploy"]
    assert "tensorrt" in plan.skipped["tensorrt"] or "cuda" in plan.skipped["tensorrt"].lower()
    assert "CUDAExecutionProvider" in plan.skipped["onnxruntime-cuda"]


def test_default_shapes_are_batch_1_and_8_and_input_keeps_its_batch():
    assert plan_bench(["cbam"]).shapes["cbam"] == [(1, 64, 56, 56), (8, 64, 56, 56)]
    assert plan_bench(["cbam"], input_shape=(2, 64, 9, 7)).shapes["cbam"] == [(2, 64, 9, 7)]
    assert plan_bench(["cbam"], input_shape=(2, 64, 9, 7), batches=[1, 3]).shapes["cbam"] == [(1, 64, 9, 7),
                                                                                                (3, 64, 9, 7)]


# -- machinery --------------------------------------------------------------------------------------------------

def test_percentile_matches_numpy():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0]
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    s = summarize(values)
    assert s.median_s == 4.0 and s.min_s == 1.0 and s.runs == 7


def test_interleaved_rounds_rotate_and_stop_on_budget():
    order = []
    now = [0]

    def clock():
        now[0] += 1_000_000_000  # every reading one second later
        return now[0]

    calls = {n: (lambda n=n: order.append(n)) for n in "abc"}
    samples = time_interleaved(calls, warmup=1, iters=50, max_seconds=10, min_iters=2, clock=clock)
    assert order[:3] == ["a", "b", "c"]                  # warm-up
    assert order[3:9] == ["a", "b", "c", "b", "c", "a"]  # round 0, round 1 starts at b
    assert len({len(v) for v in samples.values()}) == 1 and 2 <= len(samples["a"]) < 50
    assert all(t == 1.0 for t in samples["a"])


def test_floor_bytes_counts_input_output_weights():
    model = attndeploy.create("se")
    x = torch.zeros(2, 64, 8, 8)
    out = [np.zeros((2, 64, 8, 8), np.float32)]
    fb = floor_bytes(model, x, out)
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers())
    assert (fb.input, fb.output, fb.weights) == (2 * 64 * 64 * 4, 2 * 64 * 64 * 4, weights)
    assert fb.seconds(1e9) == pytest.approx(fb.total / 1e9)
    assert copy_bandwidth(4, repeats=3) > 1e8  # > 0.1 GB/s on anything


def test_torch_alloc_peak_sees_tensors_made_in_the_call():
    peak, ops = torch_alloc_peak(lambda: torch.ones(1 << 20) + 1)  # two 4 MiB tensors alive at once
    assert 8 << 20 <= peak < 16 << 20
    assert ops and {"op", "self_ms", "share"} <= set(ops[0])


@pytest.mark.skipif(rss_probe_unavailable() is not None, reason="needs Linux /proc/self/clear_refs")
def test_rss_probe_sees_touched_pages():
    with RssProbe() as probe:
        block = np.ones(64 << 20, np.uint8)
    assert probe.peak_bytes >= 48 << 20
    del block


def test_quiet_captures_native_writes(capfd):
    with quiet() as captured:
        os.write(1, b"to fd 1\n")
        os.write(2, b"to fd 2\n")
        print("python print")
    assert "to fd 1" in captured.text and "to fd 2" in captured.text and "python print" in captured.text
    out, err = capfd.readouterr()
    assert "to fd" not in out + err


# -- a real run, tiny ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def se_result():
    plan = plan_bench(["se"], input_shape=(1, 64, 8, 8), batches=[1, 2], backends=[*CPU_BACKENDS, "tensorrt"],
                      ort_profile=True, **TINY)
    return run_bench(plan, progress=False)


def test_json_holds_every_figure(se_result):
    json.dumps(se_result)  # JSON-ready
    assert se_result["environment"]["threads"] == 1 and se_result["settings"]["iters"] == 3
    assert se_result["copy_bandwidth_gb_s"]["used"] >= se_result["copy_bandwidth_gb_s"]["start"] > 0
    cells = se_result["results"]
    assert [(c["module"], c["input"]) for c in cells] == [("se", "1x64x8x8"), ("se", "2x64x8x8")]
    for cell in cells:
        assert cell["floor"]["input"] == cell["batch"] * 64 * 64 * 4 and cell["floor"]["ms"] > 0
        for name in CPU_BACKENDS:
            e = cell["backends"][name]
            assert e["status"] == "ok", e
            assert e["runs"] == 3 and 0 < e["min_ms"] <= e["median_ms"] <= e["p90_ms"]
            assert e["throughput_per_s"] == pytest.approx(cell["batch"] / e["median_ms"] * 1e3)
            assert e["x_floor"] == pytest.approx(e["median_ms"] / cell["floor"]["ms"])
            assert "peak_rss_bytes" in e
        for name in ("eager-reference", "eager-deploy"):
            assert cell["backends"][name]["alloc_peak_bytes"] >= cell["floor"]["output"]
        assert cell["backends"]["onnxruntime"]["profile"]["ops"]
        assert cell["backends"]["onnxruntime"]["nodes"] > 0
        assert cell["ratios"]["onnxruntime_speedup"] == pytest.approx(
            cell["backends"]["eager-reference"]["median_ms"] / cell["backends"]["onnxruntime"]["median_ms"])
        trt = cell["backends"]["tensorrt"]
        assert trt["status"] in ("ok", "skipped") and (trt["status"] == "ok" or trt["reason"])


def test_table_and_summary(se_result):
    table = format_table(se_result)
    assert "median ms" in table and "x floor" in table and "memory floor" in table
    assert table.count("onnxruntime-reference") == 2
    if se_result["results"][0]["backends"]["tensorrt"]["status"] == "skipped":
        assert "skipped tensorrt:" in table
    rows = summary_rows(se_result)
    assert rows[0]["onnxruntime_x_floor"] > 0 and rows[0]["eager-reference_ms"] > 0


def test_markdown_table_has_one_row_per_module_and_input(se_result):
    lines = format_markdown(se_result).splitlines()
    assert lines[0].startswith("| module | input |") and len(lines) == 2 + len(se_result["results"])
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    row = summary_rows(se_result)[0]
    assert cells[0] == "se" and cells[2] == f"{row['eager-reference_ms']:.3g}" and cells[-1].endswith("×")


def test_plot_writes_a_png(se_result, tmp_path):
    pytest.importorskip("matplotlib")
    from attndeploy.bench.plot import plot_bench

    path = plot_bench(se_result, tmp_path / "plots" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_graph_falls_back_to_dynamic_axes():
    """ACmix's static reference export folds its encoding into float64; the dynamic one runs."""
    plan = plan_bench(["acmix"], input_shape=(1, 64, 8, 8), backends=["eager-deploy", "onnxruntime-reference"], **TINY)
    entry = run_bench(plan, progress=False)["results"][0]["backends"]["onnxruntime-reference"]
    assert entry["status"] == "ok", entry


def test_reference_that_exports_in_neither_form_is_na_with_both_reasons():
    plan = plan_bench(["mlca"], input_shape=(1, 64, 8, 8), backends=["eager-deploy", "onnxruntime-reference"], **TINY)
    entry = run_bench(plan, progress=False)["results"][0]["backends"]["onnxruntime-reference"]
    assert entry["status"] == "n/a" and "static:" in entry["reason"] and "dynamic:" in entry["reason"]


def test_cli_json_and_table(cli, capsys):
    args = ["bench", "eca", "--input", "1x64x8x8", "--backends", "eager-deploy,onnxruntime", "--iters", "2",
            "--warmup", "0", "--threads", "1", "--copy-mib", "4"]
    assert cli([*args, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["results"][0]["backends"]["onnxruntime"]["status"] == "ok"
    assert "bench" in captured.err  # the progress bar
    assert cli([*args, "--no-progress"]) == 0
    assert "eager-deploy" in capsys.readouterr().out
