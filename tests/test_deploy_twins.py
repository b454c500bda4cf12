"""Reference vs deploy twin for every registry name: same state_dict, same outputs at >= 5 shapes."""

import pytest
import torch
from torch import nn

import attndeploy
from attndeploy.weights import randomize_


def twin_shapes(spec):
    n, c, h, w = spec.example_shape
    m, lo = spec.hw_multiple, max(spec.min_hw, spec.hw_multiple)
    small = (1, c, lo, lo + m)
    return [*spec.parity_shapes(), small, (2, c, 2 * m * 5 + lo, 3 * m * 3)]


@pytest.mark.parametrize("name", attndeploy.list_modules())
def test_deploy_twin_equals_reference(name):
    spec = attndeploy.get_spec(name)
    ref = randomize_(attndeploy.create(name), seed=3).eval()
    twin = attndeploy.to_deploy(ref)
    assert type(twin) is spec.deploy
    assert list(twin.state_dict()) == list(ref.state_dict())
    assert all(p.abs().min() > 0 for p in ref.parameters()), "weights must be non-zero everywhere"
    shapes = twin_shapes(spec)
    assert len(set(shapes)) >= 5
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for shape in shapes:
            x = torch.randn(shape, generator=gen)
            refs, gots = ref(x), twin(x)
            refs = refs if isinstance(refs, tuple) else (refs,)
            gots = gots if isinstance(gots, tuple) else (gots,)
            for r, g in zip(refs, gots, strict=True):
                torch.testing.assert_close(g, r, atol=spec.deploy_tol.atol, rtol=spec.deploy_tol.rtol,
                                           msg=lambda m: f"{name} at {shape}: {m}")


def test_to_deploy_swaps_inside_any_tree_and_reports_paths():
    block = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), attndeploy.create("cbam"))
    model = nn.Sequential(block, nn.ModuleDict({"head": attndeploy.create("coordatt")}))
    swapped, swaps = attndeploy.swap_to_deploy(model)
    assert [(s.path, s.deploy) for s in swaps] == [("0.1", "CBAMDeploy"), ("1.head", "CoordAttDeploy")]
    assert type(model[0][1]).__name__ == "CBAM", "the input model is not modified"
    assert type(swapped[0][1]).__name__ == "CBAMDeploy"


def test_to_deploy_leaves_user_subclasses_alone():
    class MyCBAM(attndeploy.get_spec("cbam").reference):
        pass

    model = nn.Sequential(MyCBAM(64))
    _, swaps = attndeploy.swap_to_deploy(model)
    assert swaps == []
