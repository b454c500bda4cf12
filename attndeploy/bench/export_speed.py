"""Export time, side by side: attndeploy's verified export against ultralytics' own ONNX exporter.

    report = compare_export_speed("yolov8n-cbam.yaml", "bench-out", imgsz=640, custom_modules="blocks.py")
    report.ratio            # attndeploy's seconds / ultralytics' seconds (fastest round of each)
    report.stages           # attndeploy's seconds per pipeline stage, in its fastest round

One process, one model (built once from its YAML with random weights, see
`adapters.ultralytics_sources.random_weights_`), the same image size and opset for both:

- ultralytics: `YOLO(...).export(format="onnx", dynamic=True, simplify=True, imgsz, opset)`
  (deep copy, fuse, dry run, TorchScript export, onnxslim);
- attndeploy: `attndeploy.export(model, imgsz=..., opset=...)` with everything it checks by
  default (prepare, evidence, lint, export and file checks, onnxsim with its numeric check,
  parity over its default shapes, the detection-level check, write).

A warm-up round of each (imports, first-call costs) is not timed; then `rounds` rounds
alternate which exporter goes first, so a drifting machine load lands on both. Ultralytics
writes `<folder>/ultralytics/<name>.onnx`, attndeploy `<folder>/attndeploy/<name>.onnx`.
For the CLI (`attndeploy bench --export MODEL.yaml`): `add_export_arguments` and `run_export_bench`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attndeploy import settings_checks as check
from attndeploy.errors import require
from attndeploy.fileio import check_output_file, removed_on_failure
from attndeploy.limits import check_tensor_bytes
from attndeploy.source_kind import SourceKind, classify_source
from attndeploy.usercode import calling_user_code

Log = Callable[[str], None]


@dataclass
class ExportSpeed:
    """Seconds per round of each exporter, attndeploy's stage times (fastest round) and its verdict."""

    model: str
    imgsz: tuple[int, int]
    opset: int
    ultralytics_s: list[float] = field(default_factory=list)
    attndeploy_s: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    passed: bool = False

    @property
    def ratio(self) -> float:
        return min(self.attndeploy_s) / min(self.ultralytics_s)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "imgsz": list(self.imgsz), "opset": self.opset,
                "ultralytics_s": [round(s, 3) for s in self.ultralytics_s],
                "attndeploy_s": [round(s, 3) for s in self.attndeploy_s], "ratio": round(self.ratio, 3),
                "stages": {k: round(v, 3) for k, v in self.stages.items()}, "passed": self.passed}

    def lines(self) -> list[str]:
        """A short human table: both exporters, the ratio, attndeploy's slowest stages first."""
        h, w = self.imgsz
        out = [f"{self.model} at {h}x{w}, opset {self.opset}: ultralytics {min(self.ultralytics_s):.2f} s, "
               f"attndeploy {min(self.attndeploy_s):.2f} s (verified: {'passed' if self.passed else 'FAILED'}), "
               f"ratio {self.ratio:.2f}"]
        for stage, seconds in sorted(self.stages.items(), key=lambda kv: -kv[1]):
            out.append(f"  {stage:<10} {seconds:7.2f} s")
        return out


def _wrapper(source: str, custom_modules: Path | None, seed: int) -> Any:
    """`YOLO(source)` built with the custom classes visible, random weights; stays a YOLO wrapper. The YAML is
    checked first and ultralytics' build errors are one line (`adapters.ultralytics_yaml`)."""
    from attndeploy.adapters.ultralytics_yaml import check_model_yaml, yaml_build_errors

    path = Path(source).expanduser()
    check_model_yaml(path)  # before ultralytics is imported: it writes its settings file on first import
    from ultralytics import YOLO

    from attndeploy.adapters.ultralytics_sources import (
        custom_modules_file,
        random_weights_,
        visible_to_yaml_parser,
    )
    with custom_modules_file(custom_modules) as classes, visible_to_yaml_parser(classes):
        with (calling_user_code(f"building {path.name} with ultralytics"),
              yaml_build_errors(path.name, classes, custom_modules)):
            wrapper: Any = YOLO(source, verbose=False)
    random_weights_(wrapper.model, seed)
    return wrapper


def _time_ultralytics(wrapper: Any, folder: Path, name: str, imgsz: tuple[int, int], opset: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    wrapper.model.pt_path = str(folder / f"{name}.pt")  # where ultralytics' exporter writes <name>.onnx
    start = time.perf_counter()
    wrapper.export(format="onnx", dynamic=True, simplify=True, imgsz=list(imgsz), opset=opset, verbose=False)
    return time.perf_counter() - start


def _time_attndeploy(wrapper: Any, path: Path, imgsz: tuple[int, int], opset: int,
                     options: Mapping[str, Any]) -> tuple[float, Any]:
    from attndeploy.pipeline import export

    start = time.perf_counter()
    res = export(wrapper.model, None, path, imgsz=imgsz, opset=opset, **dict(options))
    return time.perf_counter() - start, res


def compare_export_speed(source: str, folder: str | Path, *, imgsz: int | tuple[int, int] = 640, opset: int = 17,
                         rounds: int = 2, options: Mapping[str, Any] | None = None,
                         log: Log | None = None) -> ExportSpeed:
    """Time both exporters on the model YAML `source` (see the module docstring).

    `options` go to `attndeploy.export` (`atol`, `parity_shapes` ...); their `seed` (0) also seeds the
    weights, and their `custom_modules` (a .py file) is what the YAML's parser may name.
    """
    options = dict(options or {})
    custom_modules = options.pop("custom_modules", None)
    require(isinstance(rounds, int) and rounds >= 1, "rounds must be a positive int", ">= 1", rounds)
    size = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    say = log or (lambda _msg: None)
    folder = Path(folder)
    wrapper = _wrapper(source, Path(custom_modules) if custom_modules else None, int(options.get("seed", 0)))
    name = Path(source).stem
    report = ExportSpeed(name, size, opset)
    ours_path, theirs = folder / "attndeploy" / f"{name}.onnx", folder / "ultralytics"
    say("warm-up: one untimed export with each (imports, first calls)")
    _time_ultralytics(wrapper, theirs, name, size, opset)
    _time_attndeploy(wrapper, ours_path, size, opset, options)
    best = float("inf")
    for r in range(rounds):
        order = ("ultralytics", "attndeploy") if r % 2 == 0 else ("attndeploy", "ultralytics")
        for which in order:
            if which == "ultralytics":
                report.ultralytics_s.append(_time_ultralytics(wrapper, theirs, name, size, opset))
            else:
                seconds, res = _time_attndeploy(wrapper, ours_path, size, opset, options)
                report.attndeploy_s.append(seconds)
                if seconds < best:
                    best, report.stages, report.passed = seconds, dict(res.seconds), bool(res.passed)
        say(f"round {r + 1}/{rounds}: ultralytics {report.ultralytics_s[-1]:.2f} s, "
            f"attndeploy {report.attndeploy_s[-1]:.2f} s")
    return report


MAX_ROUNDS = 100


def add_export_arguments(p: Any) -> None:
    """`bench --export MODEL.yaml` options (the bench command adds the flag and calls `run_export_bench`)."""
    p.add_argument("--export-imgsz", type=int, default=640, metavar="S", help="image size of both exports (640)")
    p.add_argument("--export-rounds", type=int, default=2, metavar="N", help="timed rounds of each exporter (2)")
    p.add_argument("--export-out", type=Path, default=Path("models/bench-export"), metavar="DIR",
                   help="where both exporters write (models/bench-export; removed when the bench fails or is "
                        "interrupted, if it made it)")


def check_export_arguments(source: str, args: Any) -> tuple[tuple[int, int], list[Path]]:
    """The image size and the two output folders of `bench --export`, checked before ultralytics runs."""
    require(classify_source(source).kind is SourceKind.YAML, "bench --export takes a model YAML",
            "MODEL.yaml (built offline by ultralytics)", source)
    size = check.imgsz(args.export_imgsz, "--export-imgsz")
    assert size is not None
    check_tensor_bytes((1, 3, *size), f"--export-imgsz {args.export_imgsz} (1x3x{size[0]}x{size[1]} float32)")
    check.integer(args.export_rounds, "--export-rounds", 1, MAX_ROUNDS)
    check.opset(getattr(args, "opset", 17), "--opset")
    folders = [Path(args.export_out) / "attndeploy", Path(args.export_out) / "ultralytics"]
    for folder in folders:
        check_output_file(folder / f"{Path(source).stem}.onnx")
    return size, folders


def run_export_bench(source: str, args: Any, log: Log) -> ExportSpeed:
    """What `attndeploy bench --export MODEL.yaml` runs: the arguments checked, then the comparison; the folders it
    made are removed if it fails or is interrupted."""
    size, folders = check_export_arguments(source, args)
    with removed_on_failure(folders):
        return compare_export_speed(source, args.export_out, imgsz=size, opset=getattr(args, "opset", 17),
                                    rounds=args.export_rounds, log=log,
                                    options={"seed": getattr(args, "seed", 0),
                                             "custom_modules": getattr(args, "custom_modules", None)})


__all__ = ["ExportSpeed", "add_export_arguments", "check_export_arguments", "compare_export_speed",
           "run_export_bench"]
