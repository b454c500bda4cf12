"""`ExportSettings`: every option of an export in one frozen object, each declared once, here, validated once.

Each field is an `attndeploy.options.option(...)`: its type, default, help, group, check, CLI
flag and recipe key. The `attndeploy export` parser (`attndeploy.cli.export_options`), the TOML
recipe schema (`attndeploy.recipes`) and the API's keywords (`ExportSettings.create`,
`attndeploy.export(..., **options)`) are made from these declarations; the pipeline only reads
the object. A bad value raises `UsageError` naming the option, the expected and the actual
value; an unknown option suggests the closest.

    settings = ExportSettings.create("cbam", (1, 64, 56, 56), "out/cbam.onnx", opset=18, precision="fp16")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attndeploy import settings_checks as check
from attndeploy.argparsing import parse_float, parse_int, parse_kwargs, parse_path
from attndeploy.defaults import DEFAULT_OPSET, EXPORTERS, ORT_PROVIDERS
from attndeploy.errors import unknown_name
from attndeploy.options import Needs, api_spelling, check_fields, check_relations, declared, given_names, option
from attndeploy.settings_rules import check_export_rules
from attndeploy.shapes import Shape

if TYPE_CHECKING:
    import torch
    from torch import nn

PRECISIONS = ("fp32", "fp16", "int8")
INT8_FLAVOURS = ("trt", "ort-cpu")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFORM_CONV_LOWERINGS = ("auto", "onnx", "plugin", "decompose")
PARITY_BACKENDS = tuple(ORT_PROVIDERS)
INT8_ONLY = Needs("precision", ("int8",))
_SHAPE = "NxCxHxW"


def _create(cls: Any, args: tuple[Any, ...], options: Mapping[str, Any]) -> Any:
    valid = [o.name for o in declared(cls)][len(args):]
    for key in options:
        if key not in valid:
            raise unknown_name("export option" if cls is ExportSettings else "engine option", key, valid)
    return cls(*args, **options)


@dataclass(frozen=True)
class EngineSettings:
    """A TensorRT engine built from the final graph at the graph's precision (`--engine`); shapes bound its
    optimization profile. Every field is an option of the `engine` group (CLI flags need `--engine`)."""

    min: Shape | None = option(None, f"min shape of the optimization profile (default: from the example and the "
                               "shape rule)", group="engine", check=check.optional(check.shape), flag="--min",
                               metavar=_SHAPE, recipe="min", needs=Needs("engine"))
    opt: Shape | None = option(None, "opt shape of the optimization profile (default: the example)", group="engine",
                               check=check.optional(check.shape), flag="--opt", metavar=_SHAPE, recipe="opt",
                               needs=Needs("engine"))
    max: Shape | None = option(None, "max shape of the optimization profile (default: from the example and the "
                               "shape rule)", group="engine", check=check.optional(check.shape), flag="--max",
                               metavar=_SHAPE, recipe="max", needs=Needs("engine"))
    workspace_mb: int = option(2048, "builder workspace limit in MiB", group="engine",
                               check=check.integer_in(1, 1 << 20), flag="--workspace", parse=parse_int, metavar="MB",
                               recipe="workspace_mb", needs=Needs("engine"))
    timing_cache: Path | None = option(None, "timing cache file, reused across builds", group="engine",
                                       check=check.optional_path, flag="--timing-cache", parse=parse_path,
                                       metavar="FILE", recipe="timing_cache", needs=Needs("engine"))
    plugins: tuple[Path, ...] = option((), "plugin library to load (repeat the flag for several)", group="engine",
                                       check=check.paths, flag="--plugin", parse=parse_path, repeat=True,
                                       metavar="LIB", recipe="plugins", needs=Needs("engine"))
    rebuild: bool = option(False, "build again even when a cached engine matches", group="engine",
                           check=check.boolean, flag="--rebuild", recipe="rebuild", needs=Needs("engine"))

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def create(cls, **options: Any) -> EngineSettings:
        """Validated engine settings; an unknown option suggests the closest."""
        return _create(cls, (), options)  # type: ignore[no-any-return]


def engine_settings(value: Any, option_label: str) -> EngineSettings | None:
    """None/False: no engine; True: the defaults; a mapping (a recipe's table): its options; or EngineSettings."""
    if value is None or value is False:
        return None
    if value is True:
        return EngineSettings()
    if isinstance(value, Mapping):
        return EngineSettings.create(**value)
    if not isinstance(value, EngineSettings):
        raise check.wrong_type(option_label, "EngineSettings, True or None", value)
    return value


@dataclass(frozen=True)
class ExportSettings:
    """Every option of one export. Build it with `create`; each field declares its option (see the module doc)."""

    source: nn.Module | str = option(
        None, "a registry name (see `attndeploy list`), pkg.module:factory, path/to/file.py[:factory], MODEL.yaml "
        "or a checkpoint (.pt)", group="model", check=check.source, flag="NAME", recipe="model.source")
    example: torch.Tensor | Shape | None = option(
        None, "example input shape (default for registry names and detectors: theirs)", group="model",
        check=check.example, flag="--input", metavar=_SHAPE, recipe="input")
    out_path: Path | None = option(None, "the ONNX file (default <out_dir>/<name>.onnx)", group="output",
                                   check=check.out_path,
                                   exempt="the CLI and recipes name the folder (--out, out); the files are named "
                                          "after the model")
    name: str | None = option(None, "names the files (default: the registry name, the file's stem or the factory)",
                              group="model", check=check.name, flag="--name", recipe="model.name")
    kwargs: Mapping[str, Any] = option(help="constructor / factory arguments, e.g. '{\"channels\": 32}'",
                                       factory=dict, group="model", check=check.kwargs, flag="--kwargs",
                                       parse=parse_kwargs, metavar="JSON", recipe="model.kwargs")
    weights: Path | None = option(None, "a state_dict checkpoint, loaded with torch.load(weights_only=True)",
                                  group="model", check=check.optional_path, flag="--weights", parse=parse_path,
                                  metavar="FILE", recipe="model.weights")
    seed: int = option(0, "seed of the random weights and parity inputs (0..2**63-1)", group="model",
                       check=check.seed, flag="--seed", parse=parse_int, recipe="seed")
    custom_modules: Path | None = option(None, "a .py file whose classes a model YAML names", group="family",
                                         check=check.optional_path, flag="--custom-modules", parse=parse_path,
                                         metavar="FILE.py", recipe="model.custom_modules")
    trust_checkpoint: bool = option(False, "load a pickled checkpoint (an ultralytics best.pt): loading it runs code",
                                    group="family", check=check.boolean, flag="--trust-checkpoint",
                                    recipe="model.trust_checkpoint")
    imgsz: tuple[int, int] | None = option(
        None, "detectors: example image size as ultralytics spells it, 640 or 480,640 (default 640); a size that is "
        "no multiple of the model's stride is rounded up, as ultralytics does, and the report says so",
        group="family", check=check.imgsz, flag="--imgsz", metavar="S|H,W", recipe="imgsz", excludes=("example",))
    batch: int | None = option(None, "detectors: example batch size (default 1)", group="family",
                               check=check.optional(check.integer_in(1, 1 << 16)), flag="--batch", parse=parse_int,
                               metavar="N", recipe="batch", excludes=("example",))
    # export
    opset: int = option(DEFAULT_OPSET, "ONNX opset", group="export", check=check.opset, flag="--opset",
                        parse=parse_int, recipe="opset")
    dynamic: bool = option(True, "dynamic batch, H and W (--dynamic), or the example's shape only (--static)",
                           group="export", check=check.boolean, flag="--dynamic", off_flag="--static",
                           recipe="dynamic")
    exporter: str = option("auto", "the exporter: auto (TorchScript up to opset 17, dynamo above), torchscript or "
                           "dynamo", group="export", check=check.one_of(EXPORTERS), flag="--exporter",
                           metavar="|".join(EXPORTERS), recipe="exporter")
    deform_conv: str = option("auto", "torchvision deform_conv2d as: auto (onnx at opset >= 19, decompose at 16-18), "
                              "onnx (DeformConv), plugin (TensorRT ModulatedDeformConv2d), decompose (GridSample)",
                              group="export", check=check.one_of(DEFORM_CONV_LOWERINGS), flag="--deform-conv",
                              metavar="|".join(DEFORM_CONV_LOWERINGS), recipe="deform_conv")
    rewrites: bool = option(True, "route hazardous calls (adaptive pools, unfold, ...) to exact export-friendly "
                            "forms while exporting (--no-rewrites: export them as they are)", group="export",
                            check=check.boolean, off_flag="--no-rewrites", recipe="rewrites")
    deploy_twins: bool = option(True, "swap registered reference modules for their deploy twins "
                                "(--no-deploy-twins: export the references)", group="export", check=check.boolean,
                                off_flag="--no-deploy-twins", recipe="deploy_twins")
    simplify: bool = option(True, "simplify the graph with onnxsim (--no-simplify: skip it)", group="export",
                            check=check.boolean, off_flag="--no-simplify", recipe="simplify")
    # parity
    parity_shapes: tuple[Shape, ...] | None = option(
        None, "check parity at exactly these shapes (default: a sweep inside the model's shape rule)", group="parity",
        check=check.shapes, flag="--parity-shapes", metavar=f"{_SHAPE}[,{_SHAPE}...]", recipe="parity_shapes")
    inputs: Any = option(None, "parity inputs from your data: (K, C, H, W) .npy/.npz or a folder of images "
                         "(decoded and resized); default: image-like U[0, 1) for 3-channel inputs, N(0, 1) otherwise",
                         group="parity", check=check.data, flag="--inputs", parse=parse_path,
                         metavar="FILE.npy|.npz|DIR", recipe="inputs")
    atol: float | None = option(None, "absolute tolerance (default: per model)", group="parity",
                                check=check.tolerance, flag="--atol", parse=parse_float, recipe="atol")
    rtol: float | None = option(None, "relative tolerance (default: per model)", group="parity",
                                check=check.tolerance, flag="--rtol", parse=parse_float, recipe="rtol")
    backends: tuple[str, ...] = option(("onnxruntime-cpu",), "the onnxruntime backends the graph is checked on",
                                       group="parity", check=check.names_of(PARITY_BACKENDS), flag="--backends",
                                       metavar="B[,B...]", recipe="backends")
    # reduced precision
    precision: str = option("fp32", "the graph's precision: fp32, fp16 (mixed, keep-fp32 plan) or int8 (Q/DQ)",
                            group="precision", check=check.one_of(PRECISIONS), flag="--precision",
                            metavar="|".join(PRECISIONS), recipe="precision")
    calibration: Any = option(None, "int8 calibration data: (K, C, H, W) array, .npy/.npz, or a folder of images",
                              group="precision", check=check.data, flag="--calib", parse=parse_path, metavar="PATH",
                              recipe="calib", needs=INT8_ONLY)
    keep_fp32: tuple[str, ...] = option((), "module-path patterns kept in fp32, e.g. 'model.9.*,*.softmax'",
                                        group="precision", check=check.patterns, flag="--keep-fp32",
                                        metavar="PATTERNS", recipe="keep_fp32", needs=Needs("precision",
                                                                                            ("fp16", "int8")))
    int8_target: float = option(0.99, "output cosine the int8 search must reach, in (0, 1)", group="precision",
                                check=check.cosine_target, flag="--int8-target", parse=parse_float,
                                recipe="int8_target", needs=INT8_ONLY)
    int8_flavour: str = option("trt", "trt (TensorRT's Q/DQ placement) or ort-cpu", group="precision",
                               check=check.one_of(INT8_FLAVOURS), flag="--int8-flavour",
                               metavar="|".join(INT8_FLAVOURS), recipe="int8_flavour", needs=INT8_ONLY)
    calibration_method: str = option("minmax", "int8 calibration: minmax, entropy or percentile", group="precision",
                                     check=check.one_of(CALIBRATION_METHODS), flag="--calib-method",
                                     metavar="|".join(CALIBRATION_METHODS), recipe="calibration_method",
                                     needs=INT8_ONLY)
    # detector outputs, as ultralytics names them
    nms: bool | None = option(None, "embed (True): NMS in the graph; free (False): the model's NMS-free head; "
                              "default: raw outputs, NMS outside (as ultralytics)", group="nms",
                              check=check.optional_bool, flag="--nms", words={"embed": True, "free": False},
                              metavar="embed|free", recipe="nms")
    max_det: int = option(300, "most detections per image", group="nms", check=check.integer_in(1, 1 << 16),
                          flag="--max-det", parse=parse_int, recipe="max_det", needs=Needs("nms", (True, False)))
    conf: float | None = option(None, "confidence threshold, in [0, 1] (default: the detection check's own)",
                                group="nms", check=check.optional(check.unit_interval), flag="--conf",
                                parse=parse_float, recipe="conf")
    iou: float = option(0.7, "NMS IoU threshold, in (0, 1]", group="nms", check=check.positive_fraction,
                        flag="--iou", parse=parse_float, recipe="iou", needs=Needs("nms", (True,)))
    agnostic_nms: bool = option(False, "class-agnostic NMS", group="nms", check=check.boolean, flag="--agnostic-nms",
                                recipe="agnostic_nms", needs=Needs("nms", (True, False)))
    # TensorRT engine, and where the files go
    engine: EngineSettings | None = option(None, "also build a TensorRT engine at the graph's precision and check it "
                                           "against eager", group="engine", check=engine_settings, flag="--engine",
                                           nested=EngineSettings, recipe="engine")
    out_dir: Path | None = option(None, "output folder (default models/<name>/)", group="output", check=check.out_dir,
                                  flag="--out", parse=parse_path, metavar="DIR", recipe="out")
    report: bool = option(False, "write report.json beside the model", group="output", check=check.boolean,
                          exempt="the CLI and recipes always write report.json")
    bundle: bool = option(True, "write the device bundle beside the model (--no-bundle: the model and report only)",
                          group="output", check=check.boolean, off_flag="--no-bundle", recipe="bundle")

    def __post_init__(self) -> None:
        check_fields(self)
        check_relations(declared(ExportSettings), given_names(self), vars(self), api_spelling)
        check_export_rules(self)

    @classmethod
    def create(cls, source: nn.Module | str, example: Any = None, out_path: Any = None,
               **options: Any) -> ExportSettings:
        """Validated settings; `options` are field names (an unknown one suggests the closest)."""
        return _create(cls, (source, example, out_path), options)  # type: ignore[no-any-return]

    def replace(self, **changes: Any) -> ExportSettings:
        """A copy with `changes` applied and validated again."""
        return dataclasses.replace(self, **changes)

    def resolved_out_path(self, name: str) -> Path:
        """Where the model goes once its name is known: `out_path`, else `<out_dir or models/name>/<name>.onnx`."""
        if self.out_path is not None:
            return self.out_path
        return (self.out_dir if self.out_dir is not None else Path("models") / name) / f"{name}.onnx"

    def report_path(self, name: str) -> Path | None:
        """`report.json` beside the model, when `report` asks for it."""
        return self.resolved_out_path(name).parent / "report.json" if self.report else None
