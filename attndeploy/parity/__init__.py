"""Parity: eager PyTorch (the truth) against a backend, per output, over several shapes.

`compare` holds the rule (a NaN or Inf is never a pass), `check` the runs (eager once
per shape, each backend against it), `outputs` the naming of nested outputs, `inputs`
the parity inputs.
"""

from attndeploy.parity.check import (
           EagerFailed,
           EagerRuns,
           Probe,
           check_parity,
           compare_probes,
           eager_outputs,
           make_probes,
)
from attndeploy.parity.compare import (
           OutputParity,
           ParityReport,
           compare,
           record_backend_error,
)
from attndeploy.parity.inputs import random_input
from attndeploy.parity.outputs import dropped_outputs, flatten_outputs, output_names

__all__ = ["EagerFailed", "EagerRuns", "OutputParity", "ParityReport", "Probe", "check_parity", "compare", "compare_probes", "dropped_outputs",
           "eager_outputs", "flatten_outputs", "make_probes", "output_names", "random_input", "record_backend_error"]
