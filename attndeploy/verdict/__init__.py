"""The verdict: one judge for every candidate graph, engine or device run, in plain numpy (no torch).

    verdict = judge(truth.probes, run, names, Budget.float64(), key=("fp32", "onnxruntime-cpu"))
    verdict.passed, verdict.failure_message(), verdict.to_dict()

- `truth`: what the eager model computed (inputs, eager fp32 and float64 outputs per probe),
  as plain arrays that save to and load from one `.npz` (the device bundle carries it);
- `rule`: the fp32 rule anchored on float64 (a graph's own distance to float64 against
  eager fp32's, per output channel) and its measured constants;
- `budget`: which rule a candidate is held to (fp32, given atol/rtol, a cosine floor);
- `judge`: runs a candidate on the truth's inputs and folds every output into a `Verdict`;
- `report`: `Verdict` and `OutputVerdict`, what the report and the table show;
- `metrics`: cosine, SQNR, max abs and the p99 relative error of a tensor against its reference.

This package imports numpy and the standard library only: `attndeploy verify` runs it on a
Jetson without torch.
"""

from attndeploy.verdict.budget import Budget
from attndeploy.verdict.judge import Key, Runner, judge, key_label
from attndeploy.verdict.report import OutputVerdict, Verdict
from attndeploy.verdict.truth import TruthData, TruthProbe

__all__ = ["Budget", "Key", "OutputVerdict", "Runner", "TruthData", "TruthProbe", "Verdict", "judge", "key_label"]
