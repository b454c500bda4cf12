import subprocess
import sys

import pytest
import torch

import attndeploy
from attndeploy.defaults import DEPLOY_TOL, ONNX_TOL
from attndeploy.errors import UsageError
from attndeploy.registry import ModuleSpec, Tolerance, all_specs, init_kwargs

EXPECTED = {"se", "eca", "cbam", "sk", "scse", "nonlocal", "gc", "gcnet", "mlca", "coordatt", "selfattn",
            "acmix", "spd", "deformconv"}


def test_registry_holds_every_family():
    assert set(attndeploy.list_modules()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_create_defaults_accepts_example_shape(name):
    spec = attndeploy.get_spec(name)
    model = attndeploy.create(name).eval()
    with torch.no_grad():
        out = model(torch.randn(spec.example_shape))
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape[0] == spec.example_shape[0]
    assert isinstance(model, spec.reference) and issubclass(spec.deploy, spec.reference)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_init_kwargs_rebuild_the_same_module(name):
    model = attndeploy.create(name)
    rebuilt = type(model)(**init_kwargs(model))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_unknown_name_lists_valid_and_suggests_closest():
    with pytest.raises(UsageError) as err:
        attndeploy.get_spec("cbma")
    assert "did you mean 'cbam'" in str(err.value) and "coordatt" in str(err.value)


def test_unknown_constructor_argument_is_named():
    with pytest.raises(UsageError, match="unknown argument of se 'reductoin'.*did you mean 'reduction'"):
        attndeploy.create("se", reductoin=8)


def test_channels_not_divisible_by_reduction():
    with pytest.raises(UsageError, match=r"divisible.*expected .*got 40"):
        attndeploy.create("scse", channels=40, reduction=16)


def test_each_family_keeps_reference_and_twin_in_one_file():
    for spec in all_specs():
        family = spec.reference.__module__
        assert family.startswith("attndeploy.families.") and spec.deploy.__module__ == family, spec.name


def test_public_names_and_default_tolerances():
    assert ModuleSpec is attndeploy.ModuleSpec and Tolerance is attndeploy.Tolerance
    spec = ModuleSpec("x", torch.nn.Identity, torch.nn.Identity, (1, 3, 8, 8), "-")
    assert (spec.deploy_tol, spec.onnx_tol) == (DEPLOY_TOL, ONNX_TOL)


IMPORTED_FIRST = ["attndeploy.spec", "attndeploy.registry", "attndeploy.families.cbam"]
# each imported first with no attndeploy module loaded (torch stays: it is not ours); a cycle shows up as a
# partially initialised module
FRESH_IMPORTS = """
import importlib, sys
for first in sys.argv[1:]:
    for name in [m for m in sys.modules if m == "attndeploy" or m.startswith("attndeploy.")]:
        del sys.modules[name]
    importlib.import_module(first)
    import attndeploy
    print(first, len(attndeploy.list_modules()))
"""


def test_imports_without_a_cycle():
    out = subprocess.run([sys.executable, "-c", FRESH_IMPORTS, *IMPORTED_FIRST], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == [f"{m} {len(EXPECTED)}" for m in IMPORTED_FIRST]


def test_the_import_check_sees_a_cycle_that_only_the_module_imported_first_shows(tmp_path):
    """A planted cycle: `a` defines A, then imports `b`; `b` imports A from `a`. Importing `a` first works; `b` first
    fails. The check imports a, then b: it fails only because it drops the package's modules in between."""
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("A = 1\nfrom cyc.b import B\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    check = FRESH_IMPORTS.replace("attndeploy", "cyc").replace("print(first, len(cyc.list_modules()))", "")
    cached = check.replace("del sys.modules[name]", "pass")  # the same, without starting afresh
    runs = [subprocess.run([sys.executable, "-c", code, "cyc.a", "cyc.b"], capture_output=True, text=True,
                           check=False, cwd=tmp_path) for code in (check, cached)]
    assert runs[0].returncode != 0 and "partially initialized" in runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
