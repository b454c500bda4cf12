"""The `attndeploy export` options, made from the declarations in `attndeploy.settings`: one flag, one meaning.

    add_export_options(parser)            # every declared option, in its help group
    settings = settings_from_args(args)   # the options given -> ExportSettings (no export)
    settings_from_argv(["cbam", "--opset", "18"])   # the same from an argument list, for tests and tools

Every option's argparse `dest` is its API name and its default None ("not given"), so the
settings' own defaults apply and a recipe's values are overridden only by what was typed. A
value is parsed and checked as it is read (the message names the flag); a flag given without
the option it needs (`--workspace` without `--engine`, `--calib` without `--precision int8`)
is refused naming both, and a removed flag names what replaced it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attndeploy.argparsing import UsageErrorParser, argument_type, parse_text
from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.options import GROUPS, Option, check_relations, cli_spelling, declared
from attndeploy.settings import EngineSettings, ExportSettings

# flag -> (what replaced it, why): still recognised, so using one says what to type instead
REMOVED_FLAGS = {
    "--fp16": ("--precision fp16 (with --engine for its engine)",
               "an engine is built at its graph's precision, and --precision fp16 makes the fp16 graph"),
    "--no-dynamic": ("--static", "one flag per meaning"),
}
MODEL_GROUP = "model"  # what a recipe fixes: refused beside --recipe


def export_options() -> tuple[Option, ...]:
    """Every option `attndeploy export` takes: the settings' and the engine's."""
    return (*declared(ExportSettings), *declared(EngineSettings))


def _converter(opt: Option, flag: str) -> Any:
    parse = opt.parse or parse_text

    def convert(text: str) -> Any:
        if opt.words is not None:
            if text not in opt.words:
                raise unknown_name(f"{flag} value", text, opt.words)
            return opt.words[text]
        value = parse(text, flag)
        if opt.check is None:
            return value
        return opt.check([value], flag)[0] if opt.repeat else opt.check(value, flag)  # one item of a list

    convert.__name__ = opt.name
    return argument_type(convert)


def _help(opt: Option) -> str:
    text = opt.help
    if opt.needs is not None and opt.needs.values:  # (an engine option's group already says it needs --engine)
        other = {o.name: o for o in export_options()}[opt.needs.option]
        text += f"; used with {' or '.join(other.spell(v) for v in opt.needs.values)}"
    default = opt.default
    if default is None or isinstance(default, bool) or default in ((), {}) or opt.words is not None:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{text} (default: {shown})"


class _Removed(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        flag = self.option_strings[0]
        replacement, why = REMOVED_FLAGS[flag]
        raise UsageError(f"{flag} was removed: {why}", replacement, option_string or flag)


def add_option(container: Any, opt: Option) -> None:
    """One declared option as argparse arguments in `container` (a parser or an argument group)."""
    if opt.flag is not None and not opt.flag.startswith("-"):
        container.add_argument(opt.name, nargs="?", metavar=opt.flag, help=opt.help)
    elif opt.is_bool or opt.nested is not None:
        target = container.add_mutually_exclusive_group() if opt.flag and opt.off_flag else container
        if opt.flag:
            target.add_argument(opt.flag, dest=opt.name, action="store_const", const=True, default=None,
                                help=_help(opt))
        if opt.off_flag:
            target.add_argument(opt.off_flag, dest=opt.name, action="store_const", const=False, default=None,
                                help=f"see {opt.flag}" if opt.flag else _help(opt))
    elif opt.flag is not None:
        metavar = opt.metavar or ("|".join(opt.words) if opt.words else None)
        container.add_argument(opt.flag, dest=opt.name, type=_converter(opt, opt.flag), default=None, metavar=metavar,
                               action="append" if opt.repeat else "store", help=_help(opt))


def add_options(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """The declared options `names` (API names), in `parser` itself (for commands that share a few)."""
    table = {o.name: o for o in export_options()}
    for name in names:
        add_option(parser, table[name])


def add_export_options(parser: argparse.ArgumentParser) -> None:
    """Every export option, grouped as `attndeploy.options.GROUPS`; removed flags say what replaced them."""
    groups = {key: parser if key == MODEL_GROUP else parser.add_argument_group(title) for key, title in GROUPS.items()}
    for opt in declared(ExportSettings):
        add_option(groups[opt.group], opt)
        for inner in declared(opt.nested) if opt.nested is not None else ():
            add_option(groups[inner.group], inner)
    for flag in REMOVED_FLAGS:
        parser.add_argument(flag, action=_Removed)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """{API name: value} of the options typed on the command line."""
    return {o.name: getattr(args, o.name) for o in export_options() if getattr(args, o.name, None) is not None}


def check_given(given: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """`UsageError` (in flags) when a given option needs another that `values` (the effective ones) lacks."""
    check_relations(export_options(), given, values, cli_spelling)


def split_engine(given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the settings' options, the engine's options) of `given`."""
    engine_names = {o.name for o in declared(EngineSettings)}
    return ({k: v for k, v in given.items() if k not in engine_names},
            {k: v for k, v in given.items() if k in engine_names})


def settings_from_args(args: argparse.Namespace) -> ExportSettings:
    """The `ExportSettings` of an `attndeploy export NAME ...` command line: `report.json` always written."""
    given = given_options(args)
    defaults = {o.name: o.default for o in export_options()}
    check_given(given, {**defaults, **given})
    options, engine = split_engine(given)
    if options.pop("engine", None):
        options["engine"] = EngineSettings.create(**engine)
    source, example = options.pop("source", None), options.pop("example", None)
    return ExportSettings.create(source, example, None, report=True, **options)


def model_options_given(args: argparse.Namespace) -> list[str]:
    """The flags of the options a recipe fixes (the model, its files, its seed) that were typed."""
    given = given_options(args)
    return [str(o.flag) for o in export_options() if o.group == MODEL_GROUP and o.name in given
            and o.flag and o.flag.startswith("-")]


def recipe_job(job: ExportSettings, args: argparse.Namespace) -> ExportSettings:
    """`job` (a recipe entry) with the options typed on the command line (but `--out`) overriding its own."""
    given = given_options(args)
    given.pop("out_dir", None)
    values = {**vars(job), **given, "engine": given.get("engine") or job.engine}
    check_given(given, values)
    options, engine = split_engine(given)
    if options.pop("engine", None) or engine:
        options["engine"] = dataclasses.replace(job.engine or EngineSettings(), **engine)
    return job.replace(**options)


def settings_from_argv(argv: Sequence[str]) -> ExportSettings:
    """The settings `attndeploy export ARGV` would run with (`UsageError` as the CLI's), exporting nothing."""
    parser = UsageErrorParser(prog="attndeploy export")
    add_export_options(parser)
    args = parser.parse_args(list(argv))
    require(args.source is not None, "settings_from_argv builds one model's settings", "NAME [options]", "no NAME")
    return settings_from_args(args)


__all__ = ["REMOVED_FLAGS", "add_export_options", "add_option", "add_options", "export_options", "given_options",
           "model_options_given", "recipe_job", "settings_from_args", "settings_from_argv"]
