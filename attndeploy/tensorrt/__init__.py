"""TensorRT engines from attndeploy's ONNX exports: profiles, engine cache, fp16 both API generations, runner.

`tensorrt` itself is imported lazily inside the functions that need it; everything here
that does not touch a GPU (profiles, cache keys, the fp16 plan and ONNX conversion)
works without it.
"""

from attndeploy.tensorrt.builder import BuildResult, EngineBuildFailed, build_engine, engine_path_for
from attndeploy.tensorrt.cache import BuildSettings, Platform, cache_key, lookup
from attndeploy.tensorrt.deploy import EngineReport, engine_for_export
from attndeploy.tensorrt.precision import KEEP_FP32_OPS, Fp32Pin, convert_onnx_to_fp16, fp32_plan
from attndeploy.tensorrt.profiles import InputProfile, Profile, derive_profile
from attndeploy.tensorrt.runner import TensorRTRunner

__all__ = [
    "KEEP_FP32_OPS", "BuildResult", "BuildSettings", "EngineBuildFailed", "EngineReport", "Fp32Pin", "InputProfile",
    "Platform", "Profile", "TensorRTRunner", "build_engine", "cache_key", "convert_onnx_to_fp16", "derive_profile",
    "engine_for_export", "engine_path_for", "fp32_plan", "lookup",
]
