"""TensorRT engines from attndeploy's ONNX exports, built and run through NVIDIA's Polygraphy.

Polygraphy (maintained and tested by NVIDIA against each TensorRT release) creates the
network, the builder config (TF32, precision flags, profile, workspace, timing cache),
builds, deserialises, loads plugins and runs (`TrtRunner`). Ours: the engine cache and its
sidecar (`cache`), the precision policy per TensorRT generation (`options`, `precision`; the
fp32 plan and the mixed fp16 rewrite live in `attndeploy.precision`), the parse with per-node errors
and the fp32 pinning (`network`), the plan tying them to Polygraphy's loaders (`plan`),
profiles (`profiles`), the runner on our `Runner` interface (`runner`) and the pipeline's
engine stage (`deploy`).

`tensorrt` and `polygraphy` are imported lazily inside the functions that need them;
everything that does not touch a GPU (profiles, cache keys, the plan, the fp16 rewrite)
works without them. Entry points: `deploy.engine_for_export`, `builder.build_engine`,
`runner.TensorRTRunner`, `plan.plan_build`, `_api.tensorrt_unavailable`.
"""
