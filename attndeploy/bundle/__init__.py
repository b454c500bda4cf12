"""What travels to the device beside the ONNX graph: engine build script, Triton repository, labels, metadata.

Torch-free (numpy, onnx and attndeploy's own ONNX readers), so it runs wherever the core
install does. Each writer takes plain values and returns the path it wrote:

    write_build_script([Path("models/cbam/cbam.onnx")], Path("models/cbam"), "input",
                       (1, 64, 14, 14), (1, 64, 56, 56), (4, 64, 112, 112))   # build_engine.sh
    write_triton_repository(Path("models/cbam/cbam.onnx"), Path("models/cbam"), "cbam", max_batch=4)
    write_labels(Path("models/yolo"), model.names)                         # labels.txt
    write_metadata(Path("models/yolo"), {"task": "detect", "stride": 32})  # metadata.json
    describe_bundle(Path("models/cbam"))   # {"files": [{"path", "bytes"}], "total_bytes"}
"""

from attndeploy.bundle.build_script import SCRIPT_NAME, write_build_script
from attndeploy.bundle.labels import LABELS_FILE, METADATA_FILE, write_labels, write_metadata
from attndeploy.bundle.listing import BundleFile, describe_bundle, format_listing, list_bundle
from attndeploy.bundle.triton import write_triton_repository

__all__ = [
    "LABELS_FILE", "METADATA_FILE", "SCRIPT_NAME", "BundleFile", "describe_bundle", "format_listing", "list_bundle",
    "write_build_script", "write_labels", "write_metadata", "write_triton_repository",
]
