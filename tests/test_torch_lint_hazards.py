"""The torch lint's checks for what crashed or misled on user code: each on a model with the bug, and quiet on its fix.

- shape-dependent Python control flow (`if h != self.dct_h:` read from forward's source;
  TracerWarnings raised while a module is traced), mapped to module path and line;
- submodules held in plain Python lists / dicts (missing from the state_dict);
- `F.softmax` / `nn.Softmax` without `dim`;
- in-place writes into a forward's input (the model's, or a user module's).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.lint.source_lint import shape_branches
from attndeploy.lint.torch_lint import TorchFinding, lint_model

SHAPE_FLOW = "shape-dependent control flow"
C = 16


def line_of(obj: object, text: str) -> int:
    """The source line of `obj` that contains `text`."""
    lines, first = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    return first + next(i for i, line in enumerate(lines) if text in line)


def by_hazard(findings: list[TorchFinding], hazard: str) -> list[TorchFinding]:
    return [f for f in findings if f.hazard == hazard]


# --- shape-dependent control flow ---------------------------------------------------------------------

def dct_filters(channels: int, h: int, w: int) -> torch.Tensor:
    """(channels, h, w) 2-D DCT basis functions, one frequency per channel (cycled)."""
    filters = torch.zeros(channels, h, w)
    i, j = torch.arange(h).view(h, 1).float(), torch.arange(w).view(1, w).float()
    for c in range(channels):
        u, v = c % h, (c // h) % w
        filters[c] = torch.cos(math.pi * u * (i + 0.5) / h) * torch.cos(math.pi * v * (j + 0.5) / w)
    return filters


class FreqAttnBlog(nn.Module):
    """Frequency channel attention as blog copies write it: pools to the DCT size only when the input differs.

    x (N, C, H, W) -> (N, C, H, W). Traced at H, W == (dct_h, dct_w), the pool is dropped.
    """

    def __init__(self, channels: int, dct_h: int = 7, dct_w: int = 7, reduction: int = 4) -> None:
        super().__init__()
        self.dct_h, self.dct_w = dct_h, dct_w
        self.register_buffer("weight", dct_filters(channels, dct_h, dct_w))
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.size()
        x_pooled = x
        if h != self.dct_h or w != self.dct_w:
            x_pooled = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        y = (x_pooled * self.weight).sum(dim=[2, 3])
        return x * self.fc(y).view(b, c, 1, 1)


class FreqAttnFixed(FreqAttnBlog):
    """The fix: always pool (a no-op at the DCT size), no branch on sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        y = (pooled * self.weight).sum(dim=[2, 3])
        return x * self.fc(y)[:, :, None, None]


class Host(nn.Module):
    """stem -> `attn` -> head, so that findings carry a module path (``attn``)."""

    def __init__(self, attn: nn.Module, channels: int = C) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.attn = attn
        self.head = nn.Conv2d(channels, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(self.stem(x)))


def test_branch_on_sizes_is_found_with_path_and_line() -> None:
    findings = lint_model(Host(FreqAttnBlog(C)), torch.rand(1, 3, 7, 7))
    [branch] = by_hazard(findings, SHAPE_FLOW)  # the trace's TracerWarnings at that line are not repeated
    line = line_of(FreqAttnBlog.forward, "if h != self.dct_h")
    assert branch.path == "attn" and branch.site.endswith(f"test_torch_lint_hazards.py:{line}")
    assert branch.call == "`if h != self.dct_h or w != self.dct_w` in FreqAttnBlog.forward"
    assert branch.rewrite is None and "TorchScript traces that branch" in branch.consequence
    assert "without a Python branch on the size" in branch.hint
    assert branch.message().startswith("attn: `if h != self.dct_h")


def test_the_branch_is_a_real_bug_and_the_fix_is_quiet() -> None:
    model = Host(FreqAttnBlog(C)).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(1, 3, 7, 7), check_trace=False)
        x = torch.rand(1, 3, 14, 14)
        model(x)  # eager takes the other branch
        with pytest.raises(RuntimeError):
            traced(x)  # the trace kept the example's: (1, C, 14, 14) * (C, 7, 7)
    fixed = lint_model(Host(FreqAttnFixed(C)), torch.rand(1, 3, 7, 7))
    assert by_hazard(fixed, SHAPE_FLOW) == []


class SizeFlow(nn.Module):
    """Branches and loops on sizes next to ones on the rank, the channel axis and weights (not sizes)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != C or self.weight.shape[0] != C:  # rank, channels, weights: fixed
            raise ValueError("expected (N, 16, H, W)")
        hw = x.shape[2:]
        if x.shape[2] > 32:
            x = x * 0.5
        scale = 2.0 if hw[0] * hw[1] > 64 else 1.0
        n = x.size(-1)
        for i in range(n // 4):
            x = x + i
        return x * scale


def test_source_check_reads_sizes_not_rank_channels_or_weights() -> None:
    branches = shape_branches(SizeFlow)
    assert [(b.kind, b.test) for b in branches] == [
        ("if", "x.shape[2] > 32"), ("conditional expression", "hw[0] * hw[1] > 64"), ("for", "range(n // 4)")]
    assert branches[0].line == line_of(SizeFlow.forward, "if x.shape[2] > 32")
    findings = by_hazard(lint_model(SizeFlow(), torch.rand(1, C, 6, 8)), SHAPE_FLOW)
    assert {f.site for f in findings} >= {b.site for b in branches} and all(f.path == "" for f in findings)
    assert shape_branches(nn.Conv2d) == () and shape_branches(FreqAttnFixed) == ()


def _halve_if_odd(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] % 2:  # a helper's branch: the source check reads forward only, the trace sees it
        return x[..., :-1]
    return x


class HelperBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _halve_if_odd(x) * 2


class LenBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        return x.reshape(b, -1).softmax(-1).view_as(x)


def test_tracer_warnings_map_to_module_and_line() -> None:
    [helper] = lint_model(Host(HelperBranch()), torch.rand(1, 3, 6, 7))
    assert helper.hazard == SHAPE_FLOW and helper.path == "attn" and "(TracerWarning)" in helper.call
    assert helper.site.endswith(f":{line_of(_halve_if_odd, 'if x.shape[-1] % 2')}")
    [baked] = lint_model(Host(LenBatch()), torch.rand(1, 3, 6, 7))
    assert baked.hazard == "trace-time constant" and baked.path == "attn" and baked.call.startswith("len()")
    assert baked.site.endswith(f":{line_of(LenBatch.forward, 'b = len(x)')}") and "x.size(i)" in baked.hint


# --- submodules in plain containers ---------------------------------------------------------------

class PlainConvs(nn.Module):
    """Convs in a plain list and dict (the bug) next to a list that only aliases registered convs (fine)."""

    def __init__(self, channels: int = C) -> None:
        super().__init__()
        self.convs = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2)]
        self.by_name = {"proj": nn.Conv2d(channels, channels, 1)}
        self.out = nn.Conv2d(channels, channels, 1)
        self.chain = [self.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.chain[0](self.by_name["proj"](x))


class ListedConvs(PlainConvs):
    def __init__(self, channels: int = C) -> None:
        super().__init__(channels)
        self.convs = nn.ModuleList(self.convs)
        self.by_name = nn.ModuleDict(self.by_name)


def test_plain_list_of_convs_is_found() -> None:
    findings = lint_model(Host(PlainConvs()), torch.rand(1, 3, 8, 8))
    assert [(f.path, f.call.split(":")[0]) for f in findings] == [("attn", "convs"), ("attn", "by_name")]
    convs, by_name = findings
    assert convs.hazard == "plain container of modules" and "plain list of 2 module(s) (Conv2d" in convs.call
    assert "nn.ModuleList" in convs.hint and "nn.ModuleDict" in by_name.hint and "state_dict" in convs.consequence
    assert convs.site.endswith(f":{line_of(PlainConvs.__init__, 'self.convs = [')}")


def test_plain_list_loses_weights_and_module_list_is_quiet() -> None:
    torch.manual_seed(0)
    source, target = PlainConvs().eval(), PlainConvs().eval()
    target.load_state_dict(source.state_dict())  # loads `out` only: the listed convs keep their own weights
    assert not any(k.startswith("convs") for k in source.state_dict())
    x = torch.rand(1, C, 8, 8)
    assert not torch.allclose(source(x), target(x))
    fixed = ListedConvs()
    assert any(k.startswith("convs.1.") for k in fixed.state_dict())
    assert lint_model(Host(fixed), torch.rand(1, 3, 8, 8)) == []


# --- softmax without dim -----------------------------------------------------------------------------

class TokenAttn(nn.Module):
    """Self-attention over the H*W tokens: x (N, C, H, W) -> (N, C, H, W); scores (N, HW, HW)."""

    def __init__(self, dim: int | None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = x.flatten(2)  # (N, C, HW)
        scores = torch.bmm(q.transpose(1, 2), q) / math.sqrt(c)  # (N, HW, HW)
        att = F.softmax(scores) if self.dim is None else F.softmax(scores, dim=self.dim)
        return torch.bmm(q, att.transpose(1, 2)).view(n, c, h, w)


def test_softmax_without_dim_is_found_and_is_a_real_bug() -> None:
    [finding] = lint_model(Host(TokenAttn(None)), torch.rand(2, 3, 4, 4))  # math.sqrt(c): channels, not reported
    assert finding.hazard == "softmax without dim" and finding.path == "attn"
    assert finding.call == "F.softmax without dim on (2, 16, 16)" and "the batch" in finding.consequence
    assert "dim=-1" in finding.hint and finding.site.endswith(f":{line_of(TokenAttn.forward, 'F.softmax(')}")
    x = torch.rand(1, C, 4, 4)
    with torch.no_grad():  # over the batch of one: every weight is 1, not a distribution over the keys
        assert not torch.allclose(TokenAttn(None)(x), TokenAttn(-1)(x))
    [module] = lint_model(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softmax()), torch.rand(1, 3, 4, 4))
    assert module.path == "1" and module.call == "F.softmax without dim on (1, 4, 4, 4)"
    assert lint_model(Host(TokenAttn(-1)), torch.rand(2, 3, 4, 4)) == []


# --- in-place writes into a forward's input -----------------------------------------------------------

class ZeroFirstChannel(nn.Module):
    """Writes into its input (the bug) unless `copy`."""

    def __init__(self, copy: bool = False) -> None:
        super().__init__()
        self.copy = copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone() if self.copy else x
        y[:, :1] = 0
        return y


class Residual(nn.Module):
    """x + f(x), with f = conv -> ReLU(inplace) (fine: an intermediate) -> `gate`."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(C, C, 1)
        self.act = nn.ReLU(inplace=True)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x))
        return x + self.gate(h) * self.gate(x)


def test_user_module_writing_its_input_is_found_and_is_a_real_bug() -> None:
    bad = Residual(ZeroFirstChannel()).eval()
    findings = lint_model(Host(bad), torch.rand(1, 3, 4, 4))
    assert [(f.hazard, f.path, f.count) for f in findings] == [("in-place write into the input", "attn.gate", 2)]
    assert findings[0].call == "ZeroFirstChannel.forward writes into its input #0 (1, 16, 4, 4)"
    assert findings[0].site.endswith(f":{line_of(ZeroFirstChannel.forward, 'y[:, :1] = 0')}")
    good = Residual(ZeroFirstChannel(copy=True)).eval()
    good.load_state_dict(bad.state_dict())
    x = torch.rand(1, C, 4, 4)
    with torch.no_grad():  # the residual reads the zeroed channel
        assert not torch.allclose(bad(x), good(x))
    assert lint_model(Host(good), torch.rand(1, 3, 4, 4)) == []  # ReLU(inplace) on an intermediate: quiet


class NormalizeInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x /= 255.0
        return x - 0.5


def test_writes_into_the_models_input_are_found_and_the_example_is_kept() -> None:
    example = torch.rand(1, 3, 4, 4)
    kept = example.clone()
    [own] = lint_model(NormalizeInput(), example)
    assert own.path == "" and own.call == "NormalizeInput.forward writes into the model's input (1, 3, 4, 4)"
    assert torch.equal(example, kept)
    [relu] = lint_model(nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(3, 4, 1)), example)
    assert relu.path == "0" and relu.call == "ReLU.forward writes into the model's input (1, 3, 4, 4)"
    assert lint_model(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(inplace=True)), example) == []
