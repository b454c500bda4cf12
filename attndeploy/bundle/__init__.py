"""What travels to the device beside the ONNX graph, and `attndeploy verify`, which checks it there without torch.

Torch-free (numpy, onnx, Polygraphy and attndeploy's own ONNX readers), so it runs wherever the
core install does. The writers take plain values and return the path they wrote:

    write_build_script([Path("models/cbam/cbam.onnx")], Path("models/cbam"), "input",
                       (1, 64, 14, 14), (1, 64, 56, 56), (4, 64, 112, 112))   # build_engine.sh
    write_triton_repository(Path("models/cbam/cbam.onnx"), Path("models/cbam"), "cbam", max_batch=4)
    write_labels(Path("models/yolo"), model.names)                         # labels.txt
    write_metadata(Path("models/yolo"), {"task": "detect", "stride": 32})  # metadata.json
    describe_bundle(Path("models/cbam"))   # {"files": [{"path", "bytes"}], "total_bytes"}

The export's bundle stage (`attndeploy.pipeline.stages.bundle`) adds the truth (`truth.npz`,
`attndeploy.verdict.TruthData`), the module references (`references`: `modules.npz`) and the
manifest (`manifest`: `bundle.json`); on the device `target` picks what to check, `verify`
judges it with the export's judge and budgets, and `device_localise` names the first module
that diverges.
"""

from attndeploy.bundle.build_script import SCRIPT_NAME, write_build_script
from attndeploy.bundle.labels import LABELS_FILE, METADATA_FILE, write_labels, write_metadata
from attndeploy.bundle.listing import BundleFile, describe_bundle, format_listing, list_bundle
from attndeploy.bundle.triton import write_triton_repository

__all__ = [
    "LABELS_FILE", "METADATA_FILE", "SCRIPT_NAME", "BundleFile", "describe_bundle", "format_listing", "list_bundle",
    "write_build_script", "write_labels", "write_metadata", "write_triton_repository",
]
