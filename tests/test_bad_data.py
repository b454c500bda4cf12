"""Bad parity inputs and calibration data (issue 18): each is refused with one line (exit 2) in the prepare stage,
before any export, read with bounds (a header claiming 45.8 GiB is never allocated, a pipe never blocks), and
nothing is left in the output folder. Both flags share one reader, so every case runs for both."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.bad_input_helpers import TINY, TINY_INPUT, refuse_export, refused, run_main
from tests.detector_models import yolo_env  # noqa: F401  (fixture)


def _png(width: int, height: int, data: bytes = b"") -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels; its pixel data is `data` (compressed)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """A .npy whose header claims `shape` but that holds 100 bytes of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(b"\0" * 100)


def _folder(path: Path, files: dict[str, bytes | None]) -> None:
    path.mkdir()
    for name, data in files.items():
        if data is None:
            (path / name).mkdir()
        else:
            (path / name).write_bytes(data)


BAD = {  # name -> (make it at the path, words the one line must hold)
    "npz-without-arrays": (lambda p: np.savez(p / "d.npz"), "d.npz", ["needs an array", "no arrays"]),
    "pickled-npy": (lambda p: np.save(p / "d.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True), "d.npy",
                    ["plain numeric array", "pickled object array"]),
    "npz-with-a-pickle": (lambda p: np.savez(p / "d.npz", x=np.array([{"a": 1}], dtype=object)), "d.npz",
                          ["pickled object array", "d.npz[x]"]),
    "header-claims-45.8-GiB": (lambda p: _npy_header_only(p / "d.npy", (64, 3, 8000, 8000)), "d.npy",
                               ["memory", "45.8 GiB"]),
    "truncated-npy": (lambda p: _npy_header_only(p / "d.npy", (4, 3, 16, 16)), "d.npy",
                      ["bytes its header promises", "truncated"]),
    "empty-file": (lambda p: (p / "d.npy").write_bytes(b""), "d.npy", ["an empty file"]),
    "text-file": (lambda p: (p / "d.npy").write_text("1,2,3"), "d.npy", [".npy/.npz", "starting with"]),
    "empty-array": (lambda p: np.save(p / "d.npy", np.zeros((0, 3, 16, 16), np.float32)), "d.npy",
                    ["must not be empty", "(0, 3, 16, 16)"]),
    "zero-sized-H-W": (lambda p: np.save(p / "d.npy", np.zeros((2, 3, 0, 0), np.float32)), "d.npy",
                       ["must not be empty", "(2, 3, 0, 0)"]),
    "bool": (lambda p: np.save(p / "d.npy", np.ones((2, 3, 16, 16), bool)), "d.npy", ["hold numbers", "bool"]),
    "complex": (lambda p: np.save(p / "d.npy", np.ones((2, 3, 16, 16), np.complex64)), "d.npy",
                ["hold numbers", "complex64"]),
    "nan": (lambda p: np.save(p / "d.npy", np.full((2, 3, 16, 16), np.nan, np.float32)), "d.npy",
            ["must be finite", "1536 NaN"]),
    "inf": (lambda p: np.save(p / "d.npy", np.full((2, 3, 16, 16), -np.inf, np.float32)), "d.npy",
            ["must be finite", "1536 Inf"]),
    "float64-overflows-float32": (lambda p: np.save(p / "d.npy", np.full((2, 3, 16, 16), 1e300)), "d.npy",
                                  ["fit in float32", "1e+300"]),
    "wrong-rank": (lambda p: np.save(p / "d.npy", np.zeros((3, 16, 16), np.float32)), "d.npy",
                   ["batch of samples", "rank 4", "(3, 16, 16)"]),
    "wrong-channels": (lambda p: np.save(p / "d.npy", np.zeros((2, 4, 16, 16), np.float32)), "d.npy",
                       ["example's channels", "expected 3, got 4"]),
    "empty-folder": (lambda p: (p / "imgs").mkdir(), "imgs", ["folder must hold images", "0 entries"]),
    "no-images-in-folder": (lambda p: _folder(p / "imgs", {"a.txt": b"x"}), "imgs", ["must hold images", "1 entries"]),
    "folder-named-x.jpg": (lambda p: _folder(p / "imgs", {"x.jpg": None}), "imgs", ["regular file", "a folder"]),
    "pipe-named-x.png": (lambda p: (_folder(p / "imgs", {}), os.mkfifo(p / "imgs" / "x.png")), "imgs",
                         ["regular file", "a named pipe"]),
    "not-an-image": (lambda p: _folder(p / "imgs", {"a.jpg": b"not a jpeg"}), "imgs",
                     ["must decode", "cannot identify"]),
    "truncated-png": (lambda p: _folder(p / "imgs", {"a.png": _png(16, 16)}), "imgs", ["must decode", "truncated"]),
    "png-claiming-30000x30000": (lambda p: _folder(p / "imgs", {"a.png": _png(30000, 30000)}), "imgs",
                                 ["decompression-bomb guard", "900000000 pixels"]),
}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """An empty working folder; any export fails the test."""
    monkeypatch.chdir(tmp_path)
    refuse_export(monkeypatch)
    return tmp_path


@pytest.mark.parametrize("flag", ["--inputs", "--calib"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_is_refused_in_one_line_before_any_export(case, flag, scratch, capsys):
    make, given, words = BAD[case]
    make(scratch)
    what = "inputs" if flag == "--inputs" else "calibration"
    more = ["--precision", "int8"] if flag == "--calib" else []
    refused(capsys, ["export", TINY, *TINY_INPUT, *more, flag, given, "--out", "out", "--json"], what, *words)
    assert not (scratch / "out").exists()


def test_a_bad_image_is_named_by_pil_after_ultralytics_patched_it(yolo_env, scratch, capsys):  # noqa: F811
    """ultralytics, once imported, wraps `PIL.Image.open` to install pi-heif on a file PIL cannot identify: the
    refusal still gives PIL's reason, and nothing is installed."""
    import ultralytics.utils.patches  # noqa: F401  (installs the wrapper)
    from PIL import Image

    assert Image.open.__module__ != "PIL.Image"
    make, given, words = BAD["not-an-image"]
    make(scratch)
    refused(capsys, ["export", TINY, *TINY_INPUT, "--inputs", given, "--out", "out", "--json"], "inputs", *words)


def test_the_same_data_when_good_reaches_the_export(scratch, capsys):
    """The control: a good .npy, a good .npz and a folder of PNGs pass the prepare stage (the export is refused)."""
    from PIL import Image

    np.save(scratch / "d.npy", np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32))
    np.savez(scratch / "d.npz", first=np.zeros((2, 3, 8, 8), np.float64), second=np.zeros(1))
    (scratch / "imgs").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(scratch / "imgs" / "a.png")
    for given in ("d.npy", "d.npz", "imgs"):
        with pytest.raises(AssertionError, match="an export started"):
            run_main(capsys, "export", TINY, *TINY_INPUT, "--precision", "int8", "--calib", given, "--inputs", given,
                     "--out", "out")


def test_a_header_claiming_more_than_memory_is_never_allocated(scratch, monkeypatch):
    """The refusal comes from the header: numpy is never asked to allocate what the header claims."""
    from attndeploy.parity.inputs import load_inputs

    _npy_header_only(scratch / "d.npy", (64, 3, 8000, 8000))
    monkeypatch.setattr(np, "empty", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(Exception, match="45.8 GiB") as err:
        load_inputs(scratch / "d.npy", (1, 3, 16, 16), "calibration")
    assert type(err.value).__name__ == "UsageError"


def test_images_are_decoded_resized_and_scaled(scratch):
    """What a good folder reads as: (K, 3, H, W) float32 in [0, 1], one per image, in name order."""
    from PIL import Image

    from attndeploy.parity.inputs import load_inputs

    (scratch / "imgs").mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(scratch / "imgs" / "b.png")
    Image.new("L", (8, 8), 0).save(scratch / "imgs" / "a.bmp")
    (scratch / "imgs" / "notes.txt").write_text("ignored")
    data = load_inputs(scratch / "imgs", (1, 3, 16, 12))
    assert data.shape == (2, 3, 16, 12) and data.dtype == np.float32
    assert data[0].max() == 0.0 and np.allclose(data[1][0], 1.0) and np.allclose(data[1][1:], 0.0)


@pytest.mark.parametrize("make,words", [
    (lambda torch: torch.empty(4, 3, 16, 16, device="meta"), ["must hold values", "meta device"]),
    (lambda torch: torch.rand(4, 3, 16, 16).bfloat16(), ["hold numbers numpy can read", "torch.bfloat16"]),
    (lambda torch: torch.ones(4, 3, 16, 16, dtype=torch.bool), ["hold numbers", "torch.bool"]),
    (lambda torch: torch.rand(4, 3, 16, 16).to_sparse(), ["dense tensor", "sparse"]),
], ids=["meta", "bfloat16", "bool", "sparse"])
def test_calibration_tensors_without_usable_values_are_usage_errors(make, words):
    import torch

    import attndeploy
    from attndeploy.errors import UsageError
    from tests.bad_input_helpers import tiny

    with pytest.raises(UsageError) as err:
        attndeploy.export(tiny(), (1, 3, 16, 16), None, precision="int8", calibration=make(torch))
    assert str(err.value).startswith("calibration ") and all(w in str(err.value) for w in words), str(err.value)


@pytest.fixture
def no_hang():
    """A read that blocks fails the test after 60 s instead of hanging the suite."""
    import signal

    def hung(signum, frame):
        raise AssertionError("blocked reading a pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("args,words", [
    (["lint", "pipe.onnx"], ["the ONNX model must be a regular file", "a named pipe"]),
    (["lint", "pipe.onnx", "--json"], ["the ONNX model must be a regular file"]),
    (["export", "pipe.yaml"], ["the model YAML must be a regular file", "a named pipe"]),
    (["bench", "--export", "pipe.yaml"], ["the model YAML must be a regular file", "a named pipe"]),
])
def test_a_named_pipe_is_refused_without_reading_it(args, words, scratch, no_hang, capsys):
    os.mkfifo(scratch / args[-1] if args[-1] != "--json" else scratch / args[-2])
    refused(capsys, args, *words)
