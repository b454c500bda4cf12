"""The hold-out models over several random draws, through the API and the CLI: every export must pass; prints the
largest clean ratio (report.json's `parity.outputs[].ratio`, the figure behind the rule's FACTOR).

    YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/yolo-cfg python -m tests.holdout_draws OUT [--draws 5]

Not part of the suite (about 10 minutes on 2 cores for 5 draws); `tests/test_holdouts.py` runs one draw each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import attndeploy
from attndeploy.cli.main import main
from tests.holdout_models import TORCHVISION, torchvision_model, unet_scse

YAMLS = ("yolo26n.yaml", "yolov10n.yaml")


def _ratio(report: dict[str, Any]) -> float:
    return max((o.get("ratio") or 0.0) for o in report["parity"]["outputs"])


def _api(out: Path, name: str, model: Any, shape: tuple[int, ...] | None, **options: Any) -> tuple[bool, float]:
    res = attndeploy.export(model, shape, out / f"{name}.onnx", opset=17, bundle=False, **options)
    return res.passed, _ratio(res.to_dict())


def _cli(out: Path, source: str, args: list[str]) -> tuple[bool, float]:
    folder = Path(tempfile.mkdtemp(dir=out))
    with contextlib.redirect_stdout(io.StringIO()):  # the report is read from its file
        code = main(["export", source, *args, "--out", str(folder), "--no-bundle", "--json"])
    return code == 0, _ratio(json.loads((folder / "report.json").read_text()))


def draw(out: Path, seed: int) -> list[tuple[str, int, str, bool, float]]:
    """(model, seed, "api" | "cli", passed, largest ratio) for every hold-out model at `seed`."""
    from ultralytics import YOLO

    from attndeploy.adapters.ultralytics_sources import random_weights_

    rows = []
    for name in TORCHVISION:
        rows.append((name, seed, "api", *_api(out, name, torchvision_model(name, seed), (1, 3, 96, 96))))
        rows.append((name, seed, "cli", *_cli(out, "tests.holdout_models:torchvision_model",
                                              ["--kwargs", json.dumps({"name": name, "seed": seed}),
                                               "--input", "1x3x96x96"])))
    rows.append(("unet_scse", seed, "api", *_api(out, "unet", unet_scse(seed), (1, 3, 128, 128))))
    rows.append(("unet_scse", seed, "cli", *_cli(out, "tests.holdout_models:unet_scse",
                                                 ["--kwargs", json.dumps({"seed": seed}), "--input", "1x3x128x128"])))
    for yaml in YAMLS:
        wrapper = YOLO(yaml, verbose=False)
        random_weights_(wrapper.model, seed)
        rows.append((yaml, seed, "api", *_api(out, yaml.split(".")[0], wrapper.model, None, imgsz=320)))
        rows.append((yaml, seed, "cli", *_cli(out, yaml, ["--imgsz", "320", "--seed", str(seed)])))
    return rows


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [row for seed in range(args.draws) for row in draw(args.out, seed)]
    for row in rows:
        print(*row[:3], "passed" if row[3] else "FAILED", f"ratio {row[4]:.3g}")
    worst = max(rows, key=lambda r: r[4])
    print(f"{sum(r[3] for r in rows)} of {len(rows)} exports passed; largest clean ratio {worst[4]:.3g} "
          f"({worst[0]} draw {worst[1]}, {worst[2]})")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(run())
