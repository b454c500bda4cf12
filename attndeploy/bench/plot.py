"""`--plot FILE.png`: median ms per module, shape and backend as grouped bars (log scale).

matplotlib is optional (`pip install 'attndeploy[plot]'`): `require_matplotlib()` is
called before any measurement so that a missing package fails at once with exit 2.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from attndeploy.errors import UsageError


def require_matplotlib() -> None:
    """`UsageError` naming the missing package unless matplotlib can be imported."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs the matplotlib package", "matplotlib installed "
                         "(pip install 'attndeploy[plot]' or pip install matplotlib)", "not installed")


def plot_bench(result: dict[str, Any], path: Path) -> Path:
    """Write a PNG bar chart of `result` (as returned by `run_bench`) to `path`."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["results"]
    backends = [b for b in result["settings"]["backends"]
                if any("median_ms" in c["backends"].get(b, {}) for c in cells)]
    labels = [f"{c['module']}\n{c['input']}" for c in cells]
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(cells) + 2), 5.0))
    for i, backend in enumerate(backends):
        xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(cells))]
        ys = [c["backends"].get(backend, {}).get("median_ms") or 0.0 for c in cells]
        ax.bar(xs, ys, width=width, label=backend)
    floors = [c["floor"].get("ms", 0.0) for c in cells]
    ax.scatter(range(len(cells)), floors, marker="_", s=400, color="black", label="memory floor", zorder=3)
    ax.set_yscale("log")
    ax.set_ylabel("median ms per call (log)")
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    env = result["environment"]
    ax.set_title(f"attndeploy bench: {env['threads']} threads, torch {env['torch']}, onnxruntime {env['onnxruntime']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
