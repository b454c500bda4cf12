"""Pre-export lint: run a model once in eager mode and report the calls that will not export well.

`lint_model(model, example)` tracks the current module path with forward pre/post hooks
(``backbone.layer3.1.attn``) and watches torch calls through a `TorchFunctionMode`. It
reports every call that would fail to export, export with the sample's shapes baked in,
pin a device, or lose precision, and names the export-time rewrite
(`attndeploy.rewrites.PATCHES` kind) that handles it, if any. A clean model (the deploy
twins, torchvision's resnet18) gives no findings.

Found: adaptive pools with sizes other than 1 (or read from ``x.size()``); avg/max pools
whose kernel is the whole input; `unfold`; `linspace`; `arange` / `zeros` / `ones` without
a device; fixed devices (``.cuda()``, ``device="cuda"``); float64 tensors; plain-tensor
attributes used in forward (not Parameters or buffers: missing from the state_dict);
`F.softmax` / `nn.Softmax` without `dim`. And, from the other lint files:

- in-place writes into a forward's input (`inplace_lint`: version counters around each call);
- branches and loops on tensor sizes in the forward of every class that ran (`source_lint`);
- submodules held in plain lists / dicts (`structure_lint`);
- TracerWarnings of one `torch.jit.trace`, at the module and line that raised them (`trace_lint`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from attndeploy.errors import UsageError, first_line, require
from attndeploy.lint.findings import (
    BAKES,
    DEVICE,
    FAILS,
    PRECISION,
    WEIGHTS,
    TorchFinding,
    merge,
)
from attndeploy.lint.inplace_lint import InputWrites
from attndeploy.lint.source_lint import shape_branches
from attndeploy.lint.structure_lint import plain_containers
from attndeploy.lint.trace_lint import (
    BRANCH_CONSEQUENCE,
    BRANCH_HINT,
    SHAPE_FLOW,
    trace_findings,
)
from attndeploy.modulepath import ModuleStack

FACTORIES = ("linspace", "arange", "zeros", "ones")
_SOFTMAXES = (F.softmax, F.log_softmax, F.softmin)


def _user_site() -> tuple[str, str]:
    """(module of the first frame outside torch.overrides/this file, first non-torch ``file:line``)."""
    frame: FrameType | None = sys._getframe(2)
    caller = ""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not caller and name not in (__name__, "torch.overrides", "torch.utils._device") \
                and not name.startswith("torch.utils._python_dispatch"):
            caller = name
        if not name.startswith(("torch", "attndeploy.lint", "attndeploy.rewrites")):
            return caller, f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return caller, ""


def _sizes(value: Any) -> tuple[Any, Any]:
    return (value[0], value[1]) if isinstance(value, (tuple, list)) and len(value) == 2 else (value, value)


def _is_cuda(device: Any) -> bool:
    try:
        return device is not None and torch.device(device).type not in ("cpu", "meta")
    except (RuntimeError, TypeError):
        return False


class _CallWatcher(TorchFunctionMode):
    """Records findings; redirects fixed devices to the example's so the run can finish."""

    def __init__(self, example: Tensor, path: Callable[[], str], plain: dict[int, tuple[str, Tensor]],
                 writes: InputWrites | None = None) -> None:
        super().__init__()
        self.example = example
        self.path = path
        self.plain = plain
        self.writes = writes
        self.found: dict[tuple[str, str, str, str], TorchFinding] = {}

    def add(self, hazard: str, call: str, consequence: str, rewrite: str | None, hint: str = "",
            site: str = "") -> None:
        key = (self.path(), hazard, call, site)
        old = self.found.get(key)
        self.found[key] = replace(old, count=old.count + 1) if old else TorchFinding(
            self.path(), hazard, call, consequence, rewrite, hint, site)

    def _pool(self, name: str, x: Any, size: Any, site: str) -> None:
        oh, ow = _sizes(size)
        if (oh == 1 and ow == 1) or (oh is None and ow is None) or not isinstance(x, Tensor) or x.dim() < 3:
            return
        h, w = x.shape[-2], x.shape[-1]
        from_input = [f"{axis}={s}" for axis, s, dim in (("H", oh, h), ("W", ow, w)) if s == dim]
        if from_input:
            why = (f"{BAKES} or {FAILS}: size {', '.join(from_input)} equals the input's, probably read from "
                   "x.size(); TorchScript rejects a non-constant output_size, dynamo bakes it")
        else:
            why = (f"{FAILS} or {BAKES}: TorchScript rejects non-divisible and upsampling sizes, dynamo bakes "
                   "the input's H, W")
        self.add("adaptive pool size", f"F.{name}(output_size={size!r}) on {tuple(x.shape)}", why, name,
                 site=site)

    def _implicit_dim(self, name: str, x: Tensor, site: str) -> None:
        dim = 0 if x.dim() in (0, 1, 3) else 1  # torch.nn.functional._get_softmax_dim
        axis = "the batch" if dim == 0 and x.dim() > 1 else f"dim {dim}"
        self.add("softmax without dim", f"F.{name} without dim on {tuple(x.shape)}",
                 f"normalises over {axis}, picked by PyTorch's legacy rule from the input's rank "
                 f"({x.dim()}-D), not over the axis meant; the graph does the same, so parity cannot catch it",
                 None, "pass dim= explicitly (dim=-1 for attention scores over the keys)", site)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        caller, site = _user_site()
        internal = caller.startswith("torch") and not caller.startswith("torch.nn.modules")
        flat = tree_flatten((args, kwargs))[0]
        for value in flat:
            held = self.plain.get(id(value)) if isinstance(value, Tensor) else None
            if held is not None and held[1] is value:
                self.add("plain tensor attribute", held[0], f"{WEIGHTS} and is exported as a constant", None,
                         "make it an nn.Parameter (trained) or register_buffer (fixed)", site)
        if self.writes is not None and args and (kwargs.get("inplace") is True or name == "__setitem__"
                                                 or (name.endswith("_") and not name.endswith("__"))):
            self.writes.note_write(args[0], site)
        if func in _SOFTMAXES and args and isinstance(args[0], Tensor) and \
                (args[1] if len(args) > 1 else kwargs.get("dim")) is None:
            self._implicit_dim(name, args[0], site)
        elif name in ("adaptive_avg_pool2d", "adaptive_max_pool2d") and args:
            self._pool(name, args[0], args[1] if len(args) > 1 else kwargs.get("output_size"), site)
        elif name in ("avg_pool2d", "max_pool2d") and args and isinstance(args[0], Tensor) and args[0].dim() >= 3:
            kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size")
            if tuple(_sizes(kernel)) == tuple(args[0].shape[-2:]):
                self.add("whole-input pool kernel", f"F.{name}(kernel_size={kernel!r}) on {tuple(args[0].shape)}",
                         f"{BAKES} or {FAILS}: the kernel is the input's H, W (from x.size())", name, site=site)
        elif name in ("unfold", "im2col") and getattr(func, "__module__", "") != "torch._tensor" and args \
                and isinstance(args[0], Tensor) and args[0].dim() in (3, 4):
            self.add("unfold", "F.unfold / nn.Unfold (im2col)",
                     f"{BAKES} or exports as a heavy Gather-based im2col", "unfold", site=site)
        elif name in FACTORIES and not internal and not isinstance(args[0] if args else None, Tensor):
            device = kwargs.get("device")
            if name == "linspace":
                self.add("linspace", "torch.linspace", f"{FAILS} or {BAKES} (dynamo, steps read from x.size()); "
                         "older TorchScript symbolics compute it in float64", "linspace", site=site)
            elif device is None:
                self.add("factory without device", f"torch.{name} without device=",
                         f"{DEVICE}: the default device (CPU), not the input's", name,
                         "or pass device=x.device, dtype=x.dtype", site)
            if _is_cuda(device):
                self.add("fixed device", f"torch.{name}(device={device!r})", DEVICE, name, site=site)
                kwargs = {**kwargs, "device": self.example.device}
        elif name == "cuda" or (name == "to" and any(_is_cuda(v) for v in flat if isinstance(v, (str, torch.device)))):
            self.add("fixed device", f"Tensor.{name}(...)", DEVICE, None, "use x.device (or .to(x.device))", site)
            return args[0].to(self.example.device) if isinstance(args[0], Tensor) else args[0]
        out = func(*args, **kwargs)
        if not internal and self.example.dtype != torch.float64:
            for value in tree_flatten(out)[0]:
                if isinstance(value, Tensor) and value.dtype == torch.float64:
                    self.add("float64", f"{name or func!r} -> float64", f"{PRECISION}: TensorRT has no float64, "
                             "ORT lacks kernels for some ops", None, "keep tensors in x.dtype", site)
                    break
        return out


def _plain_tensor_attributes(model: nn.Module) -> dict[int, tuple[str, Tensor]]:
    """id(tensor) -> (``path.attr``, the tensor) for tensors stored as plain attributes (not Parameters/buffers).

    The tensor is held, not only its id: a forward that replaces the attribute (a detector head caching its
    anchors and strides) frees the old tensor, and an id that outlives its object can name a new tensor that
    merely reuses the address (a spurious "plain tensor attribute" that came and went between runs)."""
    found: dict[int, tuple[str, Tensor]] = {}
    for path, module in model.named_modules():
        for key, value in vars(module).items():
            if isinstance(value, Tensor) and not isinstance(value, nn.Parameter):
                found[id(value)] = (f"{path}.{key}" if path else key, value)
    return found


def _branch_findings(ran: dict[type, str]) -> list[TorchFinding]:
    """Shape-dependent branches and loops in the forward of every class that ran, at its first path."""
    found = []
    for cls, path in ran.items():
        for b in shape_branches(cls):
            if b.kind == "for":
                found.append(TorchFinding(path, SHAPE_FLOW, f"`for ... in {b.test}` in {cls.__name__}.forward",
                                          "is unrolled for the example's size by TorchScript (dynamo specializes "
                                          "the size)", None, "loop over a fixed count, or use tensor ops", b.site))
            else:
                found.append(TorchFinding(path, SHAPE_FLOW, f"`{b.kind} {b.test}` in {cls.__name__}.forward",
                                          BRANCH_CONSEQUENCE, None, BRANCH_HINT, b.site))
    return found


def _without_repeats(eager: list[TorchFinding], traced: list[TorchFinding]) -> list[TorchFinding]:
    """`traced` findings not already reported at the same line by the source check."""
    seen = {(f.hazard, f.site) for f in eager}
    return [f for f in traced if (f.hazard, f.site) not in seen]


def lint_model(model: nn.Module, example: Tensor) -> list[TorchFinding]:
    """Run `model(example)` once (eval, no grad) and return its export hazards.

    In order: the hazardous calls (in call order) and in-place writes into forward inputs
    seen in eager mode; shape-dependent branches in the forward of every module class that
    ran (source); submodules held in plain containers; TracerWarnings of one
    `torch.jit.trace`. `example` (N, C, H, W) is not changed (the model runs on a copy).
    Raises `UsageError` if the model fails in eager mode on `example`.
    """
    require(isinstance(model, nn.Module), "lint_model needs an nn.Module", "an nn.Module", type(model).__name__)
    require(isinstance(example, Tensor), "lint_model needs an example input tensor", "a torch.Tensor",
            type(example).__name__)
    x = example.clone()
    writes = InputWrites(x)
    ran: dict[type, str] = {}

    def enter(path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ran.setdefault(type(module), path)
        writes.on_enter(path, module, args, kwargs)

    stack = ModuleStack(model, enter, writes.on_leave)
    linter = _CallWatcher(example, lambda: stack.current, _plain_tensor_attributes(model), writes)
    was_training = model.training
    model.eval()
    try:
        try:
            with torch.no_grad(), warnings.catch_warnings(), stack, linter:
                warnings.filterwarnings("ignore", message="Implicit dimension choice")  # reported as a finding
                model(x)
        except UsageError:
            raise
        except Exception as err:
            first = first_line(err)
            raise UsageError("the model fails in eager mode on the example input", "an input the model accepts",
                             f"{tuple(example.shape)}: {first[:300]}", f"at module {stack.current or '<root>'}") from err
        eager = merge([*linter.found.values(), *writes.found, *_branch_findings(ran), *plain_containers(model)])
        traced = trace_findings(model, example.clone())
    finally:
        model.train(was_training)
    return eager + merge(_without_repeats(eager, traced))


__all__ = ["TorchFinding", "lint_model"]
