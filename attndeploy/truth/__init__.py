"""The truth: what the eager model computes, produced once per export and read by everything that judges.

- `eager`: `EagerModel`, the only runner of the user's model for reference (fp32, its
  float64 copy, one thread, module by module);
- `truth`: `Truth`, the probes (inputs with eager fp32 and float64 outputs), the shape rule,
  the family's task inputs with their eager outputs, module-boundary runs on demand;
- `determinism`: the gate before any verdict (the eager output must not move);
- `build`: `build_truth`, what the pipeline's evidence stage calls.

Parity, the precision searches, the task check, localisation and the device bundle read
the `Truth`; nothing else runs the eager model for reference (`tests/test_truth.py`).
"""
