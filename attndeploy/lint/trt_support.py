"""What each TensorRT generation's ONNX parser accepts: operators, opset range, the constraints that bite.

Sources (read, not copied; operator lists transcribed from the support matrices):
- TensorRT 8.6: https://github.com/onnx/onnx-tensorrt/blob/release/8.6-GA/docs/operators.md
  ("TensorRT 8.6 supports operators up to Opset 17"); the parser refuses opsets < 7
  (ModelImporter.cpp, same branch); Pad modes constant/reflect/edge (builtin_op_importers.cpp).
- TensorRT 10.x: https://github.com/onnx/onnx-tensorrt/blob/release/10.1-GA/docs/operators.md
  ("TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20"), plus
  https://github.com/onnx/onnx-tensorrt/blob/main/docs/Changelog.md for what later 10.x releases
  relaxed: DeformConv (10.1), tensor `axes` for Slice (10.3) and Pad (10.4), window ops (10.4),
  STFT (10.5), dynamic Squeeze/Unsqueeze axes (10.7), RMSNormalization/RotaryEmbedding/
  TensorScatter (10.15). Pad `wrap` mode: 10.0 (Changelog 10.0 EA).
- TensorRT 11.x: no operators.md for 11 was available; NVIDIA's "ONNX Opset Guide"
  (https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html) gives
  opsets 9..25 for 11.x and points to the same operators.md. The 11 table is therefore the
  10.x table with every 10.x relaxation applied.
- Reduced precision: the "Supported Types" column of the same operators.md files (8.6-GA:
  ConstantOfShape FP32 only, QuantizeLinear FP32/FP16, DequantizeLinear INT8; 10.1-GA:
  QuantizeLinear FP32/FP16/BF16, DequantizeLinear INT8/FP8/INT4; both: zero point must be 0).
- Pooling window volume must stay < 100000 (TensorRT's MAX_KERNEL_DIMS_PRODUCT check in
  addPoolingNd): https://github.com/onnx/onnx-tensorrt/issues/937 (8.6.1), issues/333.
- TopK and NonMaxSuppression (`trt_detect_ops` applies them): both parsed by 8.6, 10 and 11
  (release/8.6-GA and 10.1-GA operators.md, FP32/FP16; NonMaxSuppression native since 8.5 GA,
  Changelog.md). TopK's K from a tensor (not only the opset-1 attribute or an initializer) is
  parsed since 8.6 EA ("Added support for TopK operators with dynamic K values", Changelog.md;
  `ITopKLayer::setInput(1, ...)` appears in the 8.6 API): TensorRT takes it as a shape tensor,
  so it must follow from shapes and constants, not from tensor values. K <= 3840 and K <= the
  axis' size for every release (TensorRT's TopK operator page,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/TopK.html; 10.1-GA
  operators.md says "less than 3840" and `sorted` must be 1). TensorRT's NMS layer keeps only
  the top 5000 boxes per image by score before NMS (2000 on SM 5.3 / 6.2 devices) where ONNX
  keeps all: https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/NMS.html.
- JetPack: 6.1 and 6.2 ship TensorRT 10.3 (https://docs.pytorch.org/TensorRT/getting_started/
  jetpack.html); TensorRT 10.3 on JetPack 6 fails to build INT8 engines of graphs with NMS or
  the NMS-free TopK head (ultralytics' exporter refuses them: ultralytics issues 23841, 26655).
- ModulatedDeformConv2d plugin fields: https://github.com/NVIDIA/TensorRT/blob/main/plugin/
  modulatedDeformConvPlugin/README.md (stride, padding, dilation: int[2]; group,
  deformable_group: int; inputs x, offset, mask, weight[, bias]; initial release Jan 2023,
  shipped with TensorRT 8.6); the 10.1 parser builds it from ONNX DeformConv
  (importerUtils.cpp, modulatedDeformableConvPluginHelper) with kINT32 fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from onnx import TensorProto

from attndeploy.errors import require, unknown_name

# what to do instead, for ops no parser (or no parser before a release) accepts
UNSUPPORTED_OP_HINTS = {
    "DeformConv": "TensorRT parses DeformConv from 10.1 (through its ModulatedDeformConv2d plugin); for older "
                  "releases export a ModulatedDeformConv2d plugin node or the GridSample decomposition (opset 16)",
    "Col2Im": "no TensorRT parser accepts Col2Im (nn.Fold): rewrite the fold as a sum of shifted, padded slices",
    "AffineGrid": "no TensorRT parser accepts AffineGrid: build the grid from Range/MatMul in the graph",
}


def _ops(text: str) -> frozenset[str]:
    return frozenset(text.split())


# release/10.1-GA docs/operators.md, rows marked Y.
_Y_10_1 = _ops("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization
LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero
Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike
RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign
Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size
Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
TopK Transpose Trilu Unsqueeze Upsample Where Xor
""")
# release/10.1-GA docs/operators.md, rows marked N.
_N_10_1 = _ops("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow CenterCropPad
Col2Im Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow HannWindow
ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss
Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt
SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""")
# release/8.6-GA docs/operators.md differs from 10.1: no CastLike, DeformConv, Gelu, Mish rows;
# Hardmax marked N (added in 9.2).
_Y_8_6 = _Y_10_1 - _ops("CastLike DeformConv Gelu Mish Hardmax")
_N_8_6 = (_N_10_1 | _ops("Hardmax")) - _ops("""
AffineGrid BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im ImageDecoder RegexFullMatch
StringConcat StringSplit""")
# Added by later 10.x releases (Changelog.md), with the release that added them.
_LATER_10 = {"DeformConv": "10.1", "BlackmanWindow": "10.4", "HammingWindow": "10.4", "HannWindow": "10.4",
             "STFT": "10.5", "RMSNormalization": "10.15", "RotaryEmbedding": "10.15", "TensorScatter": "10.15"}

# Reduced precision (operators.md "Supported Types" column). 8.6: ConstantOfShape is FP32 only; QuantizeLinear takes
# FP32/FP16 and DequantizeLinear INT8 only, zero points 0. 10.1: QuantizeLinear FP32/FP16/BF16, DequantizeLinear
# INT8/FP8/INT4 (zero point 0); every float op has FP16. 11: the 10.x columns (no operators.md for 11).
_FP16_NONE_8_6 = _ops("ConstantOfShape")
_Q_INPUTS_8_6 = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
_Q_INPUTS_10 = _Q_INPUTS_8_6 | {TensorProto.BFLOAT16}
_DQ_INPUTS_8_6 = frozenset({TensorProto.INT8})
_DQ_INPUTS_10 = _DQ_INPUTS_8_6 | {TensorProto.FLOAT8E4M3FN, TensorProto.INT4}

REDUCE_OPS = _ops("""ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare""")
POOL_OPS = _ops("AveragePool MaxPool LpPool")


@dataclass(frozen=True)
class ConstantInput:
    """Input `index` (`name`) of `op` must be an initializer or a Constant node's output.

    `relaxed_since`: the release of the generation that accepts a tensor there too (then an
    older release of the same generation refuses it: a warning, not an error).
    """

    op: str
    index: int
    name: str
    relaxed_since: str | None = None


@dataclass(frozen=True)
class PluginField:
    """`kind` is the ONNX attribute type the parser turns into the plugin field: 'int' or 'ints'."""

    kind: str
    count: int = 1


@dataclass(frozen=True)
class PluginSpec:
    name: str
    since: str
    fields: Mapping[str, PluginField]
    min_inputs: int
    max_inputs: int
    inputs: str


# Attributes the parser reads itself on plugin nodes (not plugin fields).
PLUGIN_RESERVED_ATTRS = frozenset({"plugin_version", "plugin_namespace", "tensorrt_plugin_shape_input_indices"})

MODULATED_DEFORM_CONV = PluginSpec(
    name="ModulatedDeformConv2d", since="8.6",
    fields={"stride": PluginField("ints", 2), "padding": PluginField("ints", 2), "dilation": PluginField("ints", 2),
            "group": PluginField("int"), "deformable_group": PluginField("int")},
    min_inputs=4, max_inputs=5, inputs="x, offset, mask, weight[, bias] (the mask is required)")


@dataclass(frozen=True)
class ParserSupport:
    """One TensorRT generation's ONNX parser.

    `supported` maps an op to the first release of the generation that parses it (the
    generation's baseline for most); `unsupported` lists the ops the matrix marks N.
    """

    key: str
    baseline: str
    source: str
    opset_min: int
    opset_max: int
    supported: Mapping[str, str]
    unsupported: frozenset[str]
    constant_inputs: tuple[ConstantInput, ...]
    pad_modes: frozenset[str]
    pool_dilations_must_be_one: bool
    layernorm_first_output_only: bool
    deformconv_symmetric_pads: bool
    plugins: Mapping[str, PluginSpec] = field(default_factory=dict)
    hard_opset_min: int = 7
    max_pool_window_volume: int = 100_000
    gridsample_rank: int = 4
    resize_modes: frozenset[str] = frozenset({"nearest", "linear"})
    resize_coordinate_modes: frozenset[str] = frozenset(
        {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"})
    topk_max_k: int = 3840
    nms_box_limit: int = 5000                                # boxes TensorRT's NMS layer considers per image
    release: str | None = None                               # the exact release, when known (a JetPack's)
    jetpack: str | None = None
    fp16_unsupported: frozenset[str] = frozenset()           # float ops with no FP16 implementation
    quantize_inputs: frozenset[int] = _Q_INPUTS_10           # QuantizeLinear input types (TensorProto enums)
    dequantize_inputs: frozenset[int] = _DQ_INPUTS_10        # DequantizeLinear input types

    def constant_inputs_of(self, op: str) -> list[ConstantInput]:
        return [c for c in self.constant_inputs if c.op == op]


def _always_constant(*extra: ConstantInput) -> tuple[ConstantInput, ...]:
    reduce = tuple(ConstantInput(op, 1, "axes") for op in sorted(REDUCE_OPS))
    return (*reduce, ConstantInput("CumSum", 1, "axis"), ConstantInput("OneHot", 1, "depth"), *extra)


_SUPPORT: dict[str, ParserSupport] = {
    "8.6": ParserSupport(
        key="8.6", baseline="8.6",
        source="https://github.com/onnx/onnx-tensorrt/blob/release/8.6-GA/docs/operators.md",
        opset_min=7, opset_max=17,
        supported={op: "8.6" for op in _Y_8_6}, unsupported=_N_8_6,
        constant_inputs=_always_constant(ConstantInput("Slice", 3, "axes"), ConstantInput("Squeeze", 1, "axes"),
                                         ConstantInput("Unsqueeze", 1, "axes"), ConstantInput("Pad", 3, "axes")),
        pad_modes=frozenset({"constant", "reflect", "edge"}),
        pool_dilations_must_be_one=False, layernorm_first_output_only=False, deformconv_symmetric_pads=True,
        plugins={"ModulatedDeformConv2d": MODULATED_DEFORM_CONV}, fp16_unsupported=_FP16_NONE_8_6,
        quantize_inputs=_Q_INPUTS_8_6, dequantize_inputs=_DQ_INPUTS_8_6),
    "10": ParserSupport(
        key="10", baseline="10.0",
        source="https://github.com/onnx/onnx-tensorrt/blob/release/10.1-GA/docs/operators.md",
        opset_min=9, opset_max=20,
        supported={**{op: "10.0" for op in _Y_10_1}, **_LATER_10},
        unsupported=_N_10_1 - frozenset(_LATER_10),
        constant_inputs=_always_constant(ConstantInput("Slice", 3, "axes", "10.3"),
                                         ConstantInput("Pad", 3, "axes", "10.4"),
                                         ConstantInput("Squeeze", 1, "axes", "10.7"),
                                         ConstantInput("Unsqueeze", 1, "axes", "10.7")),
        pad_modes=frozenset({"constant", "reflect", "edge", "wrap"}),
        pool_dilations_must_be_one=True, layernorm_first_output_only=True, deformconv_symmetric_pads=True,
        plugins={"ModulatedDeformConv2d": MODULATED_DEFORM_CONV}),
    "11": ParserSupport(
        key="11", baseline="11.0",
        source="https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html "
               "(opsets) + release/10.1-GA operators.md and Changelog.md up to 10.15 (operators)",
        opset_min=9, opset_max=25,
        supported={op: "11.0" for op in _Y_10_1 | frozenset(_LATER_10)},
        unsupported=_N_10_1 - frozenset(_LATER_10),
        constant_inputs=_always_constant(),
        pad_modes=frozenset({"constant", "reflect", "edge", "wrap"}),
        pool_dilations_must_be_one=True, layernorm_first_output_only=True, deformconv_symmetric_pads=True,
        plugins={"ModulatedDeformConv2d": MODULATED_DEFORM_CONV}),
}

TRT_VERSIONS: tuple[str, ...] = tuple(_SUPPORT)
# JetPack -> (the TensorRT generation's table, the exact release it ships)
JETPACKS: dict[str, tuple[str, str]] = {"6.1": ("10", "10.3"), "6.2": ("10", "10.3")}


def parser_support(trt: str | None = None, jetpack: str | None = None) -> ParserSupport:
    """The table for `trt` ("8.6", "10" or "11"), or for the TensorRT a `jetpack` ("6.1", "6.2") ships, with its
    exact release; an unknown value lists the valid ones."""
    if jetpack is not None:
        version = str(jetpack).strip()
        if version not in JETPACKS:
            raise unknown_name("JetPack version (--jetpack)", version, tuple(JETPACKS))
        key, release = JETPACKS[version]
        if trt is not None:
            require(str(trt).strip() == key, "--trt and --jetpack must name the same TensorRT", f"--trt {key} "
                    f"(JetPack {version} ships TensorRT {release})", f"--trt {trt}")
        return replace(_SUPPORT[key], release=release, jetpack=version)
    key = str(trt if trt is not None else "10").strip()
    if key not in _SUPPORT:
        raise unknown_name("TensorRT version (--trt)", key, TRT_VERSIONS)
    return _SUPPORT[key]


def version_tuple(version: str) -> tuple[int, ...]:
    """`"10.15"` -> `(10, 15)`, for ordering releases."""
    return tuple(int(p) for p in version.split(".") if p.isdigit())
