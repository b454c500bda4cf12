"""Load a user's model: a factory spec (``pkg.module:factory`` or ``path/to/file.py:factory``) and weights.

    model = load_model("attndeploy.nets.host:build_host", {"attn": "cbam"}, weights="host.pt")

Rules (each broken one raises `UsageError` naming the rule, the expected and the actual value):
- user code that exits the process on import or in the factory (``sys.exit``, an
  argparse parsing our ``sys.argv``, ``raise KeyboardInterrupt``) is refused
  (`attndeploy.usercode.calling_user_code`); a real Ctrl-C stays an interrupt;
- the part before ``:`` is an importable module (``pkg.module``; the current folder is
  tried too) or a ``.py`` file; the part after ``:`` is a callable in it (dotted names
  allowed, ``Class.build``); without ``:factory`` a callable named ``build_model`` is used;
- the callable, called with `kwargs`, returns an `nn.Module`;
- weights are read with ``torch.load(path, map_location="cpu", weights_only=True)``: a raw
  state_dict, or a dict holding one under ``"state_dict"`` or ``"model"``; a ``"module."``
  prefix (DataParallel / DDP) is stripped; keys and shapes must match the model exactly.
  A checkpoint that needs arbitrary objects unpickled is refused, never loaded unsafely.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attndeploy.errors import UsageError, first_line, require
from attndeploy.source_kind import DEFAULT_FACTORY, SourceKind, classify_source
from attndeploy.usercode import calling_user_code

STATE_DICT_KEYS = ("state_dict", "model")
SHOW = 5  # keys listed per kind in a mismatch error

FACTORY_RULE = "a model source is 'pkg.module:factory' or 'path/to/file.py:factory'"


def _split(source: str) -> tuple[str, str, bool]:
    """(module or file, factory, whether it is a file) by `attndeploy.source_kind.classify_source`'s rule;
    ``"a.b"`` alone is a module whose factory is `DEFAULT_FACTORY`."""
    require(isinstance(source, str) and source.strip() != "", FACTORY_RULE, "e.g. 'mypkg.models:build'",
            repr(source))
    found = classify_source(source)
    if found.kind is SourceKind.REGISTRY:  # a module named without its factory
        return source, DEFAULT_FACTORY, False
    require(found.kind in (SourceKind.MODULE, SourceKind.FILE) and found.well_formed, FACTORY_RULE,
            "a module or file before ':' and a Python name after it", repr(source))
    return found.location, found.callable_name, found.kind is SourceKind.FILE


def _load_file(location: str) -> Any:
    path = Path(location).expanduser()
    require(path.is_file(), "the model file must exist", "an existing .py file", str(path))
    name = f"attndeploy_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    require(spec is not None and spec.loader is not None, "the model file must be a Python source file",
            "a .py file", str(path))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        with calling_user_code(f"the model file {str(path)!r} (on import)", hold_output=True):
            try:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            except Exception as err:
                raise UsageError(f"the model file {str(path)!r} fails on import", "a file that imports cleanly",
                                 first_line(err, with_type=True)) from err
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import(location: str) -> Any:
    with calling_user_code(f"the model module {location!r} (on import)", hold_output=True):
        return _import_module(location)


def _import_module(location: str) -> Any:
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        missing_top = err.name is not None and location.split(".")[0] == err.name.split(".")[0]
        if missing_top and cwd not in sys.path:
            sys.path.insert(0, cwd)
            try:
                return importlib.import_module(location)
            except ModuleNotFoundError:
                sys.path.remove(cwd)
        raise UsageError(f"cannot import the model module {location!r}", "a module on sys.path (or in the "
                         "current folder) or a path to a .py file", first_line(err, with_type=True)) from err
    except Exception as err:
        raise UsageError(f"the model module {location!r} fails on import", "a module that imports cleanly",
                         first_line(err, with_type=True)) from err


def resolve_factory(source: str) -> Callable[..., Any]:
    """The callable named by `source` (see the module docstring for the rules)."""
    location, attr, is_file = _split(source)
    module = _load_file(location) if is_file else _import(location)
    try:
        factory = functools.reduce(getattr, attr.split("."), module)
    except AttributeError as err:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f"no ':factory' given, so '{DEFAULT_FACTORY}' was looked up" if classify_source(source).factory is None else ""
        raise UsageError(f"{location!r} has no attribute {attr!r}", "a callable defined in it, one of: "
                         + (", ".join(public[:12]) or "(none)"), repr(attr), hint) from err
    require(callable(factory), f"{location}:{attr} must be callable (a function or class returning an nn.Module)",
            "a callable", type(factory).__name__)
    return factory


def load_model(source: str, kwargs: dict[str, Any] | None = None, weights: str | Path | None = None) -> nn.Module:
    """Build the model named by `source` with `kwargs`, then load `weights` (a checkpoint) into it."""
    require(kwargs is None or isinstance(kwargs, Mapping), "model kwargs must be a mapping of argument names",
            "a dict", type(kwargs).__name__)
    factory = resolve_factory(source)
    with calling_user_code(f"the factory {source!r}", hold_output=True):
        try:
            model = factory(**dict(kwargs or {}))
        except UsageError:
            raise
        except Exception as err:
            raise UsageError(f"the factory {source!r} fails when called with kwargs {dict(kwargs or {})!r}",
                             "a call that returns the model", first_line(err, with_type=True)) from err
    require(isinstance(model, nn.Module), f"the factory {source!r} must return an nn.Module", "an nn.Module",
            type(model).__name__)
    if weights is not None:
        load_weights(model, weights)
    return model


def _read_checkpoint(path: Path) -> Any:
    require(path.is_file(), "the weights file must exist", "an existing checkpoint file", str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = next((line.strip() for line in str(err).splitlines() if "Unsupported global" in line), "")
        if not detail:  # not a refused object: a corrupt or foreign file
            raise UsageError("cannot read the checkpoint", "a file written by torch.save", first_line(err, with_type=True)) from err
        raise UsageError("the checkpoint needs arbitrary Python objects unpickled; refused (torch.load with "
                         "weights_only=True)", "a file holding only tensors (a state_dict)", detail[:300],
                         "re-save it where it was trained: torch.save(model.state_dict(), 'weights.pt')") from err
    except Exception as err:
        raise UsageError("cannot read the checkpoint", "a file written by torch.save", first_line(err, with_type=True)) from err


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """A raw state_dict, or the one under ``"state_dict"`` / ``"model"``; ``"module."`` prefixes stripped."""
    state = obj
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if state is None:
            raise UsageError("the checkpoint must be a state_dict or hold one under 'state_dict' or 'model'",
                             "a dict of tensors", "a dict with keys " + ", ".join(map(repr, list(obj)[:SHOW])))
    require(isinstance(state, Mapping), "the checkpoint must be a state_dict", "a dict of tensors",
            type(state).__name__)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    require(not bad, "every state_dict value must be a tensor", "tensors", f"non-tensors at {bad[:SHOW]}")
    return {(k[len("module."):] if str(k).startswith("module.") else str(k)): v for k, v in state.items()}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > SHOW else ''})"


def load_weights(model: nn.Module, weights: str | Path) -> nn.Module:
    """Load the checkpoint at `weights` into `model` (strict: same keys, same shapes)."""
    state = extract_state_dict(_read_checkpoint(Path(weights).expanduser()))
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_listing(shapes)}")
        raise UsageError(f"the checkpoint {str(weights)!r} does not match the model", f"the model's {len(expected)} "
                         "state_dict keys with the same shapes", "; ".join(parts),
                         "check the factory kwargs (channels, width) match the training run")
    model.load_state_dict(state, strict=True)
    return model
