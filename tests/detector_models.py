"""YOLO detectors with attention blocks, as users build them: a model YAML plus their own classes.

Nothing here imports ultralytics at import time: the `yolo_env` fixture first points its
settings at a temp folder (`YOLO_CONFIG_DIR`) and turns it offline (`YOLO_OFFLINE=1`), so
no test touches the network or `$HOME`. Models are built from YAML (never a `.pt` name,
which would download) and get random weights that make the outputs depend on the input
(`random_weights_`: the YAML init gives near-constant outputs).

Kinds: `yolov8n`, `yolov8n-cbam` (ultralytics' own CBAM after SPPF; `yolov8n-seg-cbam`
the same in the segment model), `yolov8n-coordatt`
(a blog Coordinate Attention with `AdaptiveAvgPool2d((None, 1))`), `yolov8n-acmix` (the
registry's reference ACmix), `yolov8n-dcn` (the P5 C2f with `torchvision.ops.DeformConv2d`
in its bottleneck), `yolo11n` (C2PSA attention), `yolo12n` (A2C2f area attention). The blocks named after
`yolov8n-` go in together: `yolov8n-dcn-coordatt-cbam-c2psa` holds the DCN C2f and, after SPPF, a CoordAtt, a
CBAM and YOLO11's C2PSA.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn
from torchvision.ops import DeformConv2d

from attndeploy.registry import get_spec

ACmix = get_spec("acmix").reference
TASK_SUFFIXES = ("seg", "pose", "obb")   # yolov8n-seg-cbam: ultralytics' yolov8-seg.yaml with the block
KINDS = ("yolov8n", "yolov8n-cbam", "yolov8n-coordatt", "yolov8n-acmix", "yolov8n-dcn", "yolo11n", "yolo12n")
BLOCK_AFTER_SPPF = {"cbam": [-1, 1, "CBAM", [256]], "coordatt": [-1, 1, "CoordAtt", [256, 256]],
                    "acmix": [-1, 1, "ACmix", [256, 256]],
                    "c2psa": [-1, 1, "C2PSA", [1024]]}   # YOLO11's: ultralytics scales 1024 to the n model's 256
P5_C2F_INDEX = 8
# what a user's --custom-modules file holds: their blocks, and ultralytics' CBAM (its YAML parser does not know it)
CUSTOM_MODULES = ("from ultralytics.nn.modules.conv import CBAM\n"
                  "from tests.detector_models import ACmix, C2fDCN, CoordAtt\n")


@pytest.fixture(scope="session")
def yolo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ultralytics offline, its settings in a temp folder (set before it is first imported)."""
    config = tmp_path_factory.mktemp("ultralytics-config")
    saved = {k: os.environ.get(k) for k in ("YOLO_OFFLINE", "YOLO_CONFIG_DIR")}
    os.environ.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(config))
    yield config
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class HSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.relu6(x + 3) / 6


class CoordAtt(nn.Module):
    """Coordinate Attention as blog posts copy it (houqb/CoordAttention): (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, inp: int, oup: int, reduction: int = 32) -> None:
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = HSwish()
        self.conv_h = nn.Conv2d(mip, oup, 1)
        self.conv_w = nn.Conv2d(mip, oup, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        x_h = self.pool_h(x)                      # (N, C, H, 1)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)  # (N, C, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w.permute(0, 1, 3, 2)).sigmoid()
        return x * a_w * a_h


class DCNConv(nn.Module):
    """Modulated deformable 3x3 conv + BN + SiLU (DCNv2 as YOLO tutorials add it): (N, C1, H, W) -> (N, C2, H, W)."""

    def __init__(self, c1: int, c2: int, k: int = 3) -> None:
        super().__init__()
        self.offset = nn.Conv2d(c1, 2 * k * k, k, 1, k // 2)
        self.mask = nn.Conv2d(c1, k * k, k, 1, k // 2)
        self.dcn = DeformConv2d(c1, c2, k, 1, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.dcn(x, self.offset(x), self.mask(x).sigmoid())))


class C2fDCN(nn.Module):
    """Ultralytics' C2f with a deformable conv in place of each bottleneck's second 3x3 conv; keeps C channels."""

    def __init__(self, c1: int, n: int = 1) -> None:
        super().__init__()
        from ultralytics.nn.modules.block import C2f

        self.block = C2f(c1, c1, n, shortcut=True)
        for bottleneck in self.block.m:
            bottleneck.cv2 = DCNConv(self.block.c, self.block.c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _shift(ref: Any, at: int) -> Any:
    """A YAML `from` entry with absolute layer indices >= `at` moved one down (a layer was inserted at `at`)."""
    if isinstance(ref, list):
        return [_shift(r, at) for r in ref]
    return ref + 1 if ref >= at else ref


def model_yaml(kind: str, folder: Path) -> str:
    """A YAML path for `kind` (written into `folder`), or the name of one ultralytics ships."""
    if not kind.startswith("yolov8n-"):
        return f"{kind}.yaml"
    from ultralytics.utils import ROOT

    task = next((t for t in TASK_SUFFIXES if kind.startswith(f"yolov8n-{t}-")), None)
    cfg = yaml.safe_load((ROOT / f"cfg/models/v8/yolov8{f'-{task}' if task else ''}.yaml").read_text())
    cfg["scale"] = "n"
    for block in kind.removeprefix(f"yolov8n-{task}-" if task else "yolov8n-").split("-"):
        if block == "dcn":
            cfg["backbone"][P5_C2F_INDEX] = [-1, 1, "C2fDCN", [256]]
        else:  # after SPPF (and after the blocks already appended there)
            at = len(cfg["backbone"])
            cfg["backbone"].append(BLOCK_AFTER_SPPF[block])
            cfg["head"] = [[_shift(row[0], at), *row[1:]] for row in cfg["head"]]
    cfg["names"] = {i: f"thing{i}" for i in range(cfg["nc"])}
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def custom_modules_file(folder: Path) -> Path:
    path = folder / "blocks.py"
    path.write_text(CUSTOM_MODULES)
    return path


def build(kind: str, folder: Path, seed: int = 0) -> nn.Module:
    """The `DetectionModel` of `kind`, built from its YAML with the custom blocks visible, random weights."""
    from attndeploy.adapters.ultralytics_sources import build_from_yaml, random_weights_

    model = build_from_yaml(model_yaml(kind, folder), custom_modules_file(folder))
    return random_weights_(model, seed)


def blocks() -> dict[str, type]:
    """The classes the YAMLs name that ultralytics' parser does not know."""
    from ultralytics.nn.modules.conv import CBAM

    return {"CBAM": CBAM, "CoordAtt": CoordAtt, "ACmix": ACmix, "C2fDCN": C2fDCN}


def yolo(kind: str = "yolov8n-cbam", folder: str | None = None, seed: int = 0) -> nn.Module:
    """A factory for the CLI (`tests.detector_models:yolo`): `YOLO(<kind>.yaml)` with random weights."""
    import tempfile

    from ultralytics import YOLO

    from attndeploy.adapters.ultralytics_sources import (
        random_weights_,
        visible_to_yaml_parser,
    )

    where = Path(folder or tempfile.mkdtemp(prefix="yolo-yaml-", dir=os.environ.get("YOLO_CONFIG_DIR")))
    with visible_to_yaml_parser(blocks()):
        wrapper = YOLO(model_yaml(kind, where), verbose=False)
    random_weights_(wrapper.model, seed)
    return wrapper


@torch.no_grad()
def confident_(model: nn.Module, imgsz: int = 320, boxes: int = 30) -> nn.Module:
    """Class biases shifted so that about `boxes` anchors score above ultralytics' default conf 0.25 on bus.jpg (as a
    trained detector's few dozen confident boxes; random weights alone put none there). Every class logit of the
    head's one-to-many branch (and its one-to-one branch, if any) moves by the same constant."""
    from attndeploy.adapters.ultralytics_task import letterboxed_images

    head: Any = model.model[-1]
    was = model.training
    model.eval()
    raw = model(torch.from_numpy(letterboxed_images((imgsz, imgsz))[:1].copy()))
    while isinstance(raw, (tuple, list)):
        raw = raw[0]
    model.train(was)
    probs = raw[0, 4:4 + head.nc].amax(0).clamp(1e-7, 1 - 1e-7)
    logit = torch.log(probs / (1 - probs)).sort(descending=True).values
    shift = float(torch.log(torch.tensor(0.25 / 0.75)) - (logit[boxes - 1] + logit[boxes]) / 2)
    branches = [head.cv3] + ([head.one2one_cv3] if getattr(head, "one2one_cv3", None) is not None else [])
    for branch in branches:
        for level in branch:
            level[-1].bias[:head.nc] += shift
    return model


def tiny_detr_yaml(folder: Path, name: str = "tiny-detr") -> Path:
    """A small RT-DETR (ultralytics' rtdetr-l.yaml with fewer, narrower layers and a 2-layer, 64-wide decoder with
    100 queries), named without "rtdetr": the YAML's head, not its name, must make it an RT-DETR."""
    from ultralytics.utils import ROOT

    cfg = yaml.safe_load((ROOT / "cfg/models/rt-detr/rtdetr-l.yaml").read_text())
    cfg["scales"] = {"n": [0.33, 0.25, 256]}
    cfg["scale"] = "n"
    for row in cfg["backbone"]:
        if row[2] == "HGBlock":
            row[1] = 1
            row[3][:2] = [max(8, row[3][0] // 4), max(16, row[3][1] // 4)]
    for row in cfg["head"]:
        if row[2] == "AIFI":
            row[3] = [128, 4]
        elif row[2] == "RepC3":
            row[1] = 1
    cfg["head"][-1][3] = ["nc", 64, 100, 4, 4, 2, 128]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
