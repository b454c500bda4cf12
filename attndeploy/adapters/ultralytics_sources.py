"""Ultralytics models from what a user has: a model YAML (with their own blocks) or a trained checkpoint.

    model = build_from_yaml("yolov8n-cbam.yaml", custom_modules="blocks.py")   # a DetectionModel
    model = load_checkpoint("runs/train/weights/best.pt", trust=True)           # runs the pickle's code

YAML: built through ultralytics, as `yolo train model=...yaml` builds it, by the class of
the YAML's family: `RTDETR(path)` when its last head layer is an `RTDETRDecoder` (or the file
is named `rtdetr*`, as ultralytics' CLI guesses), else `YOLO(path)` (which itself turns
YOLO-World and YOLOE YAMLs into their classes).
Its parser (`ultralytics.nn.tasks.parse_model`) resolves a layer's module name with
`globals()[name]` in `ultralytics.nn.tasks`; the `nn.Module` classes of `custom_modules`
(defined or imported there) are made visible under their names for the build only, and
the module's namespace is restored afterwards, even on error. A class the file defines
under a name ultralytics already has shadows it for that build (said in the notes). Class
names in the YAML (`names:`) are applied when present.

Checkpoint: an ultralytics `.pt` is a pickle of the whole model, so loading it runs code
from the file. It is refused unless `trust=True` (CLI `--trust-checkpoint`). The
custom-modules file is importable under its stem while loading, so a checkpoint that
pickled `blocks.CoordAtt` finds it. No download, no package install: a missing module is
an error naming it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from attndeploy.adapters.ultralytics_yaml import check_model_yaml
from attndeploy.errors import UsageError, first_line, require
from attndeploy.source_kind import SourceKind, classify_source
from attndeploy.usercode import calling_user_code

TRUST_HINT = ("an ultralytics checkpoint is a pickle: loading it runs code from the file; if you trust where it came "
              "from, pass --trust-checkpoint (Python: trust_checkpoint=True)")


def _import_file(path: Path, name: str) -> ModuleType:
    require(path.is_file() and path.suffix == ".py", "--custom-modules must be a Python file", "an existing .py file",
            str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with calling_user_code(f"the custom-modules file {str(path)!r} (on import)", hold_output=True):
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise UsageError(f"the custom-modules file {str(path)!r} fails on import", "a file that imports cleanly",
                             first_line(err, with_type=True)) from err
    return module


def module_classes(module: ModuleType) -> dict[str, type]:
    """The public `nn.Module` subclasses in `module`'s namespace (defined or imported there), by name."""
    return {k: v for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, nn.Module) and not k.startswith("_") and v is not nn.Module}


@contextlib.contextmanager
def custom_modules_file(path: Path | None) -> Iterator[dict[str, type]]:
    """`path` imported under its stem (in `sys.modules` for the block only, for pickles); yields its classes."""
    if path is None:
        yield {}
        return
    path = Path(path).expanduser()
    name = path.stem
    previous = sys.modules.get(name)
    module = _import_file(path, name)
    sys.modules[name] = module
    try:
        yield module_classes(module)
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous


@contextlib.contextmanager
def visible_to_yaml_parser(classes: Mapping[str, type]) -> Iterator[list[str]]:
    """`classes` visible to ultralytics' YAML parser for the block only; yields the names that shadow its own."""
    from ultralytics.nn import tasks

    namespace = vars(tasks)
    missing = object()
    saved = {k: namespace.get(k, missing) for k in classes}
    shadowed = [k for k, old in saved.items() if old is not missing and old is not classes[k]]
    namespace.update(classes)
    try:
        yield shadowed
    finally:
        for key, old in saved.items():
            if old is missing:
                namespace.pop(key, None)
            else:
                namespace[key] = old


def _names_from_yaml(model: Any) -> None:
    names = model.yaml.get("names") if isinstance(getattr(model, "yaml", None), dict) else None
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if isinstance(names, Mapping) and names:
        model.names = {int(k): str(v) for k, v in names.items()}


def head_module(path: Path) -> str:
    """The module name of the YAML's last head layer (`Detect`, `RTDETRDecoder` ...), "" when it cannot be read
    (ultralytics' build then says why)."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        cfg = yaml_model_load(path)
        return str(cfg["head"][-1][2])
    except Exception:  # a malformed YAML: the build reports it in ultralytics' words
        return ""


def family_class(path: Path) -> Any:
    """Ultralytics' model class for the YAML at `path`: `RTDETR` for an RT-DETR decoder head, else `YOLO`."""
    if "RTDETR" in head_module(path) or "rtdetr" in path.stem.lower():
        from ultralytics import RTDETR

        return RTDETR
    from ultralytics import YOLO

    return YOLO


def build_from_yaml(path: str | Path, custom_modules: Path | None = None) -> Any:
    """The ultralytics model (`DetectionModel` ...) a model YAML describes, built offline by ultralytics.

    `path` is a file, or a bare name ultralytics resolves in its own `cfg/models` (`yolov8n.yaml`:
    `yolov8.yaml` at scale n).
    """
    path = Path(path).expanduser()
    check_model_yaml(path)  # before ultralytics reads it: its sections, read with bounds
    require(path.is_file() or path.name == str(path), "the model YAML must exist", "an existing .yaml file, or the "
            "name of one ultralytics ships (yolov8n.yaml, yolo11n-seg.yaml ...)", str(path))
    with custom_modules_file(custom_modules) as classes, visible_to_yaml_parser(classes):
        with calling_user_code(f"building {path.name} with ultralytics"):
            try:
                model: Any = family_class(path)(str(path)).model
            except KeyError as err:
                where = f" from {custom_modules}" if custom_modules else ""
                raise UsageError(f"{path.name} names a module ultralytics' YAML parser does not know",
                                 f"an ultralytics layer or a class given with --custom-modules FILE.py{where}",
                                 first_line(err),
                                 f"known custom classes: {', '.join(sorted(classes)) or 'none'}") from err
            except FileNotFoundError as err:
                raise UsageError("the model YAML must exist", "an existing .yaml file, or the name of one ultralytics "
                                 "ships", str(path)) from err
            except Exception as err:
                raise UsageError(f"ultralytics cannot build {path.name}", "a model YAML it accepts",
                                 first_line(err, with_type=True)) from err
    _names_from_yaml(model)
    return model


def _read_pickle(path: Path) -> Any:
    from ultralytics.nn.tasks import temporary_modules

    # the aliases of ultralytics' own `torch_safe_load` (which would also download and pip-install what is missing)
    aliases = {"ultralytics.yolo.utils": "ultralytics.utils", "ultralytics.yolo.v8": "ultralytics.models.yolo",
               "ultralytics.yolo.data": "ultralytics.data"}
    renamed = {"ultralytics.nn.modules.block.Silence": "torch.nn.Identity",
               "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
               "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
               **({"pathlib.PosixPath": "pathlib.WindowsPath"} if os.name == "nt"
                  else {"pathlib.WindowsPath": "pathlib.PosixPath"})}
    with (temporary_modules(modules=aliases, attributes=renamed),
          calling_user_code(f"the checkpoint {str(path)!r} (unpickling)")):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except ModuleNotFoundError as err:
            raise UsageError(f"the checkpoint {str(path)!r} needs a module that is not importable", "its module "
                             "importable, or its file given with --custom-modules FILE.py", repr(err.name)) from err
        except Exception as err:
            raise UsageError(f"cannot read the checkpoint {str(path)!r}", "a checkpoint written by ultralytics",
                             first_line(err, with_type=True)) from err


def load_checkpoint(path: str | Path, trust: bool = False, custom_modules: Path | None = None) -> Any:
    """The model in an ultralytics checkpoint (its EMA weights when saved), float32; refused unless `trust`."""
    path = Path(path).expanduser()
    require(trust, "refusing to load a pickled checkpoint without --trust-checkpoint", "--trust-checkpoint",
            str(path), TRUST_HINT)
    require(path.is_file(), "the checkpoint must exist", "an existing .pt file", str(path))
    with custom_modules_file(custom_modules):
        ckpt = _read_pickle(path)
    model: Any = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, Mapping) else ckpt
    require(isinstance(model, nn.Module), "an ultralytics checkpoint holds its model under 'ema' or 'model'",
            "a dict with an nn.Module there", type(model).__name__,
            "a plain state_dict goes to --weights with a factory or YAML instead")
    from ultralytics.nn.tasks import guess_model_task

    model = model.float()
    model.pt_path = str(path)
    model.task = getattr(model, "task", None) or guess_model_task(model)
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("train_args"), Mapping):
        model.args = dict(ckpt["train_args"])
    return model


def _calibration_batches(channels: int, size: int, seed: int) -> list[torch.Tensor]:
    """Ultralytics' sample images letterboxed to `size` (2, 3, size, size), and U[0, 1) noise (1, C, size, size)."""
    noise = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(seed + 1))
    if channels != 3:
        return [noise]
    from attndeploy.adapters.ultralytics_task import letterboxed_images

    return [torch.from_numpy(letterboxed_images((size, size)).copy()), noise]


@torch.no_grad()
def random_weights_(model: Any, seed: int = 0, size: int = 640) -> Any:
    """Random weights that make a YOLO's outputs depend on its input (a YAML build's own init barely does).

    `attndeploy.weights.randomize_` on every trainable tensor (frozen ones, DFL's fixed
    projection, are kept); then each BatchNorm's statistics are measured on ultralytics' two
    sample images letterboxed to `size` and on U[0, 1) noise, so every layer passes on a signal
    of unit scale for both kinds of input; then the heads' ultralytics bias init (`Detect.bias_init`: class logits near
    log(5 / nc / (640 / stride)^2)), so scores look like an untrained detector's: few confident boxes.
    """
    from attndeploy.adapters.ultralytics import channels_of
    from attndeploy.weights import randomize_

    frozen = {k: v.detach().clone() for k, v in model.named_parameters() if not v.requires_grad}
    randomize_(model, seed)
    params = dict(model.named_parameters())
    for key, value in frozen.items():
        params[key].copy_(value)
    norms: list[Any] = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    channels = channels_of(model)
    was_training = model.training
    model.train()
    try:
        for x in _calibration_batches(channels, size, seed):
            model(x)
    finally:
        model.train(was_training)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    head: Any
    for head in model.modules():
        if callable(getattr(head, "bias_init", None)) and bool(getattr(head, "stride", torch.zeros(1)).gt(0).all()):
            head.bias_init()
    return model


def is_yaml(source: str) -> bool:
    return classify_source(source).kind is SourceKind.YAML


def is_checkpoint(source: str) -> bool:
    return classify_source(source).kind is SourceKind.CHECKPOINT


__all__ = ["TRUST_HINT", "build_from_yaml", "custom_modules_file", "is_checkpoint", "is_yaml", "load_checkpoint",
           "module_classes", "random_weights_", "visible_to_yaml_parser"]
