"""Export-time rewrites: exact, export-friendly forms for hazardous calls in any user code.

    with export_rewrites(x) as log:
        attndeploy.export(model, x, "m.onnx")
    log.summary()   # e.g. "adaptive_avg_pool2d x2 (identity+reduction 2); unfold x3 (slices 3)"

See `context.PATCHES` for what is patched, where and with what.
"""

from attndeploy.rewrites.context import PATCHES, Patch, export_rewrites, patch_table
from attndeploy.rewrites.log import RewriteLog
from attndeploy.rewrites.unfold import unfold_exact

__all__ = ["PATCHES", "Patch", "RewriteLog", "export_rewrites", "patch_table", "unfold_exact"]
