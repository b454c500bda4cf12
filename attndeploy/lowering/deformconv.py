"""Export-time lowerings of `torchvision::deform_conv2d`, for the TorchScript and the dynamo exporter.

The `deformconv` family's lowering (`attndeploy.families.deformconv`, whose `ModuleSpec`
names this module in `lowering`); its forms live in `deformconv_onnx`, `deformconv_plugin`
and `deformconv_decompose` next to it.

torchvision registers no ONNX symbolic for its operator (TorchScript: "unrecognized
namespace torchvision::deform_conv2d"), and onnxscript's torchlib writes ONNX `DeformConv`
whatever the opset (an invalid graph below 19). `deform_conv_export` installs one of:

- `onnx`: ONNX `DeformConv` (opset >= 19; TensorRT >= 10.1, onnxruntime);
- `plugin`: TensorRT's `ModulatedDeformConv2d` plugin node (TensorRT < 10.1, any opset);
- `decompose`: `GridSample` + `MatMul`, standard ops only (opset >= 16);
- `auto`: `onnx` from opset 19, `decompose` at 16-18.

Usage::

    with deform_conv_export("auto", 17, "torchscript") as extra:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, **extra)

The TorchScript symbolic is registered for the duration of the block only (also removed
on error); the dynamo lowering travels in the yielded `custom_translation_table`.
Operands are validated (`check_deform_inputs`) before torchvision's kernel runs in the
TorchScript trace, and again where the graph is written.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Callable, Optional, cast

import numpy as np
import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from onnxscript.function_libs.torch_lib.tensor_typing import TFloat
from torch.onnx.symbolic_helper import parse_args
from torch.overrides import TorchFunctionMode

from attndeploy.defaults import CONCRETE_EXPORTERS, DYNAMO_MIN_OPSET
from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.lowering.deformconv_decompose import MIN_OPSET as DECOMPOSE_MIN_OPSET
from attndeploy.lowering.deformconv_decompose import emit_decompose
from attndeploy.lowering.deformconv_onnx import (
    DeformParams,
    OnnxScriptWriter,
    TorchScriptWriter,
    check_deform_inputs,
    emit_onnx,
    usage_error_in,
)
from attndeploy.lowering.deformconv_plugin import (
    PLUGIN_DOMAIN,
    PLUGIN_DOMAIN_VERSION,
    PLUGIN_FIELDS,
    PLUGIN_OP,
    check_plugin_node,
    emit_plugin,
    plugin_attributes,
    plugin_nodes_to_onnx,
)

__all__ = [
    "LOWERINGS", "ONNX_MIN_OPSET", "DECOMPOSE_MIN_OPSET", "OP_NAME", "PLUGIN_DOMAIN", "PLUGIN_OP", "PLUGIN_FIELDS",
    "DeformParams", "check_deform_inputs", "check_plugin_node", "deform_conv_export", "plugin_attributes",
    "plugin_nodes_to_onnx", "resolve_deform_lowering",
]

LOWERINGS = ("auto", "onnx", "plugin", "decompose")
ONNX_MIN_OPSET = 19
OP_NAME = "torchvision::deform_conv2d"
_TORCH_DTYPES: dict[str, np.dtype] = {"Float": np.dtype(np.float32), "Half": np.dtype(np.float16)}


def resolve_deform_lowering(requested: str, opset: int) -> str:
    """The concrete lowering for `requested` ("auto", "onnx", "plugin", "decompose") at `opset`.

    `UsageError` where the opset cannot express it; an unknown name lists the valid ones.
    """
    if requested not in LOWERINGS:
        raise unknown_name("deform_conv lowering", requested, LOWERINGS)
    require(type(opset) is int, "opset must be an int", "an int", repr(opset))
    if requested == "auto":
        if opset >= ONNX_MIN_OPSET:
            return "onnx"
        require(opset >= DECOMPOSE_MIN_OPSET,
                f"deform_conv2d needs opset >= {ONNX_MIN_OPSET} (onnx) or >= {DECOMPOSE_MIN_OPSET} (decompose), "
                "or deform_conv='plugin' for TensorRT's plugin",
                f"opset >= {DECOMPOSE_MIN_OPSET} or deform_conv='plugin'", f"opset {opset}")
        return "decompose"
    if requested == "onnx":
        require(opset >= ONNX_MIN_OPSET, f"deform_conv='onnx' writes ONNX DeformConv, which exists from opset "
                f"{ONNX_MIN_OPSET}", f"opset >= {ONNX_MIN_OPSET}", f"opset {opset}",
                f"use deform_conv='decompose' (opset >= {DECOMPOSE_MIN_OPSET}) or 'plugin'")
    elif requested == "decompose":
        require(opset >= DECOMPOSE_MIN_OPSET, f"deform_conv='decompose' needs GridSample, which exists from opset "
                f"{DECOMPOSE_MIN_OPSET}", f"opset >= {DECOMPOSE_MIN_OPSET}", f"opset {opset}",
                "use deform_conv='plugin' for TensorRT's plugin")
    return requested


Emitter = Callable[[Any, DeformParams, Any, Any, Any, Any, Any, int], Any]
_EMITTERS: dict[str, Emitter] = {
    "onnx": lambda w, p, x, wt, off, m, b, opset: emit_onnx(w, p, x, wt, off, m, b),
    "plugin": lambda w, p, x, wt, off, m, b, opset: emit_plugin(w, p, x, wt, off, m, b),
    "decompose": emit_decompose,
}


def _torch_dtype(value: Any) -> np.dtype:
    name = value.type().scalarType()
    require(name in _TORCH_DTYPES, "deform_conv2d lowering supports float32 and float16 inputs",
            "Float or Half", name)
    return _TORCH_DTYPES[name]


def _torchscript_symbolic(lowering: str, opset: int) -> Callable[..., Any]:
    """The symbolic for `torchvision::deform_conv2d` (torchvision's argument order)."""

    @parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def deform_conv2d(g: Any, x: Any, weight: Any, offset: Any, mask: Any, bias: Any, stride_h: int, stride_w: int,
                      pad_h: int, pad_w: int, dil_h: int, dil_w: int, groups: int, offset_groups: int,
                      use_mask: bool) -> Any:
        sizes = TorchScriptWriter.sizes
        p = check_deform_inputs(sizes(x), sizes(weight) or [], sizes(offset), sizes(mask) if use_mask else None,
                                stride=(stride_h, stride_w), padding=(pad_h, pad_w), dilation=(dil_h, dil_w),
                                groups=groups, offset_groups=offset_groups)
        return _EMITTERS[lowering](TorchScriptWriter(g, _torch_dtype(x)), p, x, weight, offset, mask, bias, opset)

    return deform_conv2d


def _failing(error: UsageError) -> Callable[..., Any]:
    """A symbolic that raises `error` (the model has a deform_conv2d that `auto` cannot lower at this opset)."""

    def deform_conv2d(g: Any, *args: Any) -> Any:
        raise UsageError(error.rule, error.expected, error.actual, error.hint)

    return deform_conv2d


def _dynamo_translation(lowering: str, opset: int) -> Callable[..., Any]:
    """The translation function for `torch.ops.torchvision.deform_conv2d.default` (traced by the exporter)."""

    def deform_conv2d(input: TFloat, weight: TFloat, offset: TFloat, mask: Optional[TFloat], bias: Optional[TFloat],
                      stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int,
                      groups: int, offset_groups: int, use_mask: bool) -> TFloat:
        sizes = OnnxScriptWriter.sizes
        p = check_deform_inputs(sizes(input), sizes(weight) or [], sizes(offset),
                                sizes(mask) if use_mask else None, stride=(stride_h, stride_w),
                                padding=(pad_h, pad_w), dilation=(dilation_h, dilation_w), groups=groups,
                                offset_groups=offset_groups)
        writer = OnnxScriptWriter(opset, input.dtype.numpy())
        if bias is None:
            bias = writer.const(np.zeros(p.out_channels))
        return _EMITTERS[lowering](writer, p, input, weight, offset, mask, bias, opset)

    return deform_conv2d


def _dims(t: torch.Tensor) -> list[Optional[int]]:
    """Concrete dims; the ONNX tracer hands out sizes as 0-d tensors (read here without a trace warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [d if type(d) is int else int(d) if isinstance(d, torch.Tensor) else None for d in t.shape]


def _is_deform_op(func: Any) -> bool:
    packet = torch.ops.torchvision.deform_conv2d
    return func is packet or func is packet.default


class _CheckBeforeKernel(TorchFunctionMode):
    """Validates deform_conv2d operands before torchvision's kernel runs (it runs in the TorchScript trace)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        if _is_deform_op(func) and len(args) == 14 and not kwargs:
            x, weight, offset, mask, _bias, sh, sw, ph, pw, dh, dw, groups, offset_groups, use_mask = args
            check_deform_inputs(_dims(x), _dims(weight), _dims(offset), _dims(mask) if use_mask else None,
                                stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups,
                                offset_groups=offset_groups)
        return func(*args, **kwargs)


@contextlib.contextmanager
def deform_conv_export(lowering: str, opset: int, exporter: str) -> Iterator[dict[str, Any]]:
    """Lower deform_conv2d as `lowering` while `exporter` ("torchscript" or "dynamo") writes `opset`.

    Yields extra keyword arguments for `torch.onnx.export`: TorchScript `{}` (or
    `custom_opsets` for the plugin domain); dynamo `{"custom_translation_table": {...}}`.
    A `UsageError` raised by a lowering inside the exporter comes out as a `UsageError`.
    With `auto` at an opset no lowering can express (< 16), entering succeeds and the
    error is raised when the exporter meets a deform_conv2d, so that a pipeline can wrap
    every export and models without the op are unaffected; an explicit lowering the
    opset cannot express is refused at once.
    """
    if exporter not in CONCRETE_EXPORTERS:
        raise unknown_name("exporter", exporter, CONCRETE_EXPORTERS)
    if exporter == "dynamo":
        require(opset >= DYNAMO_MIN_OPSET, "the dynamo exporter cannot write opsets below 18",
                f"opset >= {DYNAMO_MIN_OPSET} with the dynamo exporter", f"opset {opset}",
                "use the TorchScript exporter")
    try:
        chosen: Optional[str] = resolve_deform_lowering(lowering, opset)
        failure: Optional[UsageError] = None
    except UsageError as err:
        if lowering != "auto":
            raise
        chosen, failure = None, err  # raised only if the model has a deform_conv2d (see the docstring)
    registered = False
    try:
        if exporter == "torchscript":
            symbolic = _torchscript_symbolic(chosen, opset) if chosen else _failing(cast(UsageError, failure))
            torch.onnx.register_custom_op_symbolic(OP_NAME, symbolic, opset)
            registered = True
            extra = {"custom_opsets": {PLUGIN_DOMAIN: PLUGIN_DOMAIN_VERSION}} if chosen == "plugin" else {}
            with _CheckBeforeKernel():
                yield extra
        else:
            op = torch.ops.torchvision.deform_conv2d.default
            lowered = cast(str, chosen)  # opset >= 18 always resolves
            yield {"custom_translation_table": {op: _dynamo_translation(lowered, opset)}}
    except Exception as err:
        found = usage_error_in(err)
        if found is None or found is err:
            raise
        raise UsageError(found.rule, found.expected, found.actual, found.hint) from err
    finally:
        if registered:
            _unregister(opset)


def _unregister(opset: int) -> None:
    """Remove our symbolic, and the empty function group torch leaves behind.

    torch 2.13's `unregister_custom_op_symbolic` keeps an empty group for the name, and the
    next TorchScript export of the op then fails with "min() arg is an empty sequence"
    instead of torchvision's "unrecognized namespace" error; dropping the empty group
    restores the state before the block.
    """
    torch.onnx.unregister_custom_op_symbolic(OP_NAME, opset)
    try:
        from torch.onnx._internal.torchscript_exporter.registration import registry
    except ImportError:  # a torch without the private registry: nothing left behind to tidy
        return
    group = registry.get_function_group(OP_NAME)
    if group is not None and not list(group._functions):
        registry._registry.pop(OP_NAME, None)
