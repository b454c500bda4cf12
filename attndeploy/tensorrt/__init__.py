"""TensorRT engines from attndeploy's ONNX exports: profiles, engine cache, fp16 both API generations, runner.

`tensorrt` itself is imported lazily inside the functions that need it; everything here
that does not touch a GPU (profiles, cache keys, the fp16 plan and ONNX conversion)
works without it. Import the submodules: `attndeploy.tensorrt.deploy.engine_for_export`,
`.builder.build_engine`, `.runner.TensorRTRunner`, `.profiles.derive_profile`,
`.cache.cache_key`, `.precision.convert_onnx_to_fp16`.
"""
