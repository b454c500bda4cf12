"""The layout rules of issue 10, checked on the source (ast): no import cycles, small files, short signatures,
and every command reaching the exporters, onnxsim and parity only through the pipeline."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attndeploy"
MAX_LINES = 300
MAX_PARAMS = 8
# Signatures fixed by someone else's API, each with the reason.
LONG_SIGNATURES = {
    "families/deformconv.py:DeformConvBlock.__init__": "mirrors torchvision.ops.DeformConv2d's arguments",
    "lowering/deformconv.py:deform_conv2d": "torchvision::deform_conv2d's operator schema (TorchScript symbolic)",
    "lowering/deformconv.py:_dynamo_deform_conv2d": "torchvision::deform_conv2d's operator schema (dynamo)",
    "lowering/deformconv_onnx.py:check_deform_inputs": "torchvision.ops.deform_conv2d's public arguments",
    "rewrites/pools.py:avg_pool2d": "patches F.avg_pool2d: its signature",
    "rewrites/pools.py:max_pool2d": "patches F.max_pool2d: its signature",
}
# Callers that must use the pipeline, and the names that mean they did not.
CALLERS = ("cli", "recipes.py", "matrix", "bench", "selftest.py")
PIPELINE_ONLY = {"run_exporter", "simplify_model", "onnxsim", "torch.onnx.export", "attndeploy.exporting.exporters",
                 "attndeploy.exporting.simplify", "attndeploy.pipeline.stages"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                lines.add(getattr(child, "lineno", -1))
    return lines


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """What `name` imports; importing `a.b.c` also runs the package `a.b`'s `__init__` (the top package's too,
    which imports nothing eagerly, is left out: it is every module's parent)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", -1) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            submodules = {f"{base}.{a.name}" for a in node.names} & set(known)
            found |= submodules
            if len(submodules) < len(node.names):  # names defined in `base` itself (not its submodules)
                found.add(base)
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(2, m.count(".") + 1)}
    return {m for m in found | parents if m in known and m != name and not name.startswith(m + ".")}


def test_the_import_graph_has_no_cycle():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    (tmp_path / "attndeploy").mkdir()
    (tmp_path / "attndeploy" / "__init__.py").write_text("")
    (tmp_path / "attndeploy" / "a.py").write_text("from attndeploy.b import x\n")
    (tmp_path / "attndeploy" / "b.py").write_text("def f():\n    from attndeploy import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "attndeploy")
    with pytest.raises(AssertionError, match="attndeploy.a -> attndeploy.b -> attndeploy.a"):
        test_the_import_graph_has_no_cycle()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (> {MAX_LINES}): make it two files"


def _signatures() -> list[tuple[str, int]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for parent in ast.walk(tree):
            for node in ast.iter_child_nodes(parent):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.arg not in ("self", "cls")]
                owner = f"{parent.name}." if isinstance(parent, ast.ClassDef) else ""
                found.append((f"{path.relative_to(PACKAGE)}:{owner}{node.name}", len(names)))
    return found


def test_no_function_takes_more_than_eight_parameters():
    long = [(where, n) for where, n in _signatures() if n > MAX_PARAMS and where not in LONG_SIGNATURES]
    assert not long, f"functions over {MAX_PARAMS} parameters (group them in a dataclass): {long}"


def test_commands_reach_exporters_onnxsim_and_parity_only_through_the_pipeline():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        if not rel.startswith(CALLERS):
            continue
        text = path.read_text()
        tree = ast.parse(text)
        names = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))}
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        hits = sorted((names | imported) & PIPELINE_ONLY)
        if hits:
            offenders.append(f"{rel}: {hits}")
    assert not offenders, "commands that bypass the pipeline:\n" + "\n".join(offenders)
