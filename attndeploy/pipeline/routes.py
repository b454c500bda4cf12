"""The routes to an fp32 graph, tried in order by one driver (`stages.export`): the first that passes is kept.

    plan_routes("auto", 18)  ->  dynamo-18, torchscript-18, torchscript-17+version-converter-18

- the exporter the settings ask for (auto: TorchScript up to opset 17, dynamo from 18);
- where it is dynamo chosen automatically, the TorchScript exporter at the same opset, then
  TorchScript at 17 upgraded by onnx's version converter (dynamo can bake the sample's sizes
  into a graph that exports "successfully" and is wrong at every other size);
- `fixed_hw_route`: where every dynamic graph is right at the example's H, W and wrong or
  failing at other sizes (a Python branch on the input size: a DCT attention that pools to
  its fixed size only `if` the input differs), H and W fixed at the example's, the batch
  dynamic; the report says so, with the line that branches.
"""

from __future__ import annotations

from dataclasses import dataclass

from attndeploy.exporting.exporters import plan_exporters

UPGRADE_FROM = 17


@dataclass(frozen=True)
class Route:
    """`exporter` writes `opset` (upgraded to `upgrade_to` when set); `input_axes` None: the truth's dynamic axes."""

    exporter: str
    opset: int
    upgrade_to: int | None = None
    input_axes: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        base = f"{self.exporter}-{self.opset}" + (f"+version-converter-{self.upgrade_to}" if self.upgrade_to else "")
        return base + (", H, W fixed" if self.fixed_hw else "")

    @property
    def fixed_hw(self) -> bool:
        return self.input_axes is not None and 2 not in self.input_axes

    @property
    def final_opset(self) -> int:
        return self.upgrade_to or self.opset


def plan_routes(exporter: str, opset: int) -> list[Route]:
    """The routes for the settings' exporter and opset, in order (`UsageError` for a combination none can write)."""
    routes = [Route(e, opset) for e in plan_exporters(exporter, opset)]
    if exporter == "auto" and opset > UPGRADE_FROM:
        routes.append(Route("torchscript", UPGRADE_FROM, upgrade_to=opset))
    return routes


def fixed_hw_route(first: Route, dynamic_axes: list[int]) -> Route:
    """`first` with only the non-spatial axes dynamic."""
    return Route(first.exporter, first.opset, first.upgrade_to, tuple(a for a in dynamic_axes if a not in (2, 3)))


__all__ = ["UPGRADE_FROM", "Route", "fixed_hw_route", "plan_routes"]
