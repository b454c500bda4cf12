"""Reduced precision without a GPU: mixed fp16 and INT8 Q/DQ graphs, verified in onnxruntime against eager fp32.

- `plan`: which nodes stay fp32 in a mixed fp16 graph (Softmax, norms, reductions,
  attention energies, sampling grids) and what precision a graph carries;
- `fp16`: the fp32 -> mixed fp16 rewrite (float32 graph inputs/outputs, Casts at every
  boundary, topologically ordered);
- `policy`: a keep-fp32 policy in PyTorch module terms (`"model.9.*"`, `"*.softmax"`) as ONNX nodes;
- `strict`: strict-fp16 evaluation (every float16 tensor rounded: the overflow onnxruntime's
  fp32 fallback kernels hide); `tensors`: every float tensor of a graph at once;
- `search`: the automatic fp16 search (overflow, then error budget), reported by module path;
- `int8`: Q/DQ through onnxruntime.quantization in TensorRT's flavour (symmetric int8, zero
  point 0, per-channel weights, float biases) or the ort-cpu flavour (uint8 activations);
- `sensitivity`: per-module int8 sensitivity and automatic exclusion until a target cosine;
- `metrics`, `modules`, `report`: cosine, SQNR, max abs, p99 relative error per output and
  per module (the branch's own error), the worst module, the budgets;
- `verify`: checker, topological order, float32 graph inputs/outputs before a graph is written;
(The reduced-precision rules of `attndeploy lint --trt` live in `attndeploy.lint.precision_lint`.)

The pipeline stage is `attndeploy.pipeline.stages.precision`; bench figures `attndeploy.bench.precision`.

Budgets (`attndeploy.defaults`): fp16 cosine >= FP16_MIN_COSINE (0.9999) in plain and
strict-fp16 evaluation, all finite; int8 cosine >= INT8_MIN_COSINE (0.99) and the task
check. Submodules are imported where used (this package imports nothing at import time).
"""
