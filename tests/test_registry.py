import pytest
import torch

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.registry import init_kwargs

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
