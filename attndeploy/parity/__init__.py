"""What parity is checked on: the model's shape rule (`shape_rules`), inputs like the real ones (`inputs`), and
outputs of any structure flattened with stable names (`outputs`). The eager truth is `attndeploy.truth`; the judge
is `attndeploy.verdict`.
"""

from attndeploy.parity.inputs import random_input
from attndeploy.parity.outputs import dropped_outputs, flatten_outputs, output_names

__all__ = ["dropped_outputs", "flatten_outputs", "output_names", "random_input"]
