"""`attndeploy bench`: eager reference, deploy twin and exported graphs timed side by side.

    >>> from attndeploy.bench import plan_bench, run_bench
    >>> plan = plan_bench(["acmix"], batches=[1, 8], backends=["eager-reference", "onnxruntime"])
    >>> result = run_bench(plan)          # JSON-ready dict
    >>> result["results"][0]["backends"]["onnxruntime"]["median_ms"]

Submodules: `plan` (argument checks), `backends` (detection and runners), `graphs`
(exports and engines made once per module), `timing` (interleaved rounds), `memory`
(peak RSS, tensor allocation peak), `floor` (memory-traffic floor), `ortprofile`
(onnxruntime per-op time), `report` (table), `plot` (PNG, needs matplotlib), `quiet`.
"""

from attndeploy.bench.plan import BenchPlan, plan_bench
from attndeploy.bench.run import run_bench

__all__ = ["BenchPlan", "plan_bench", "run_bench"]
