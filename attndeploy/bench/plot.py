"""`--plot FILE.png`: median ms per module and backend as grouped bars (log scale), one panel per batch.

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
    batches = sorted({c["batch"] for c in cells})
    modules = list(dict.fromkeys(c["module"] for c in cells))
    width = 0.8 / max(len(backends), 1)
    fig, axes = plt.subplots(len(batches), 1, figsize=(max(8.0, 0.7 * len(modules) + 2), 3.6 * len(batches)),
                             squeeze=False)
    for ax, batch in zip(axes[:, 0], batches):
        row = {c["module"]: c for c in cells if c["batch"] == batch}
        names = [m for m in modules if m in row]
        for i, backend in enumerate(backends):
            xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(names))]
            ys = [row[m]["backends"].get(backend, {}).get("median_ms") or 0.0 for m in names]
            ax.bar(xs, ys, width=width, label=backend)
        floors = [row[m]["floor"].get("ms", 0.0) for m in names]
        ax.scatter(range(len(names)), floors, marker="_", s=300, color="black", label="memory floor", zorder=3)
        ax.set_yscale("log")
        values = [v for v in floors + [row[m]["backends"].get(b, {}).get("median_ms") or 0.0
                                       for m in names for b in backends] if v > 0]
        if values:
            ax.set_ylim(min(values) / 1.5, max(values) * 1.5)
        ax.set_ylabel("median ms per call (log)")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{m}\n{row[m]['input']}" for m in names], fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    env = result["environment"]
    axes[0, 0].set_title(f"attndeploy bench: {env['threads']} thread(s), torch {env['torch']}, "
                         f"onnxruntime {env['onnxruntime']}")
    axes[0, 0].legend(fontsize=7, ncol=min(len(backends) + 1, 5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
