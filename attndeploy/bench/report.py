"""The bench's human output: one row per module, shape and backend, then what was skipped.

    module   input        backend                  median ms   p90 ms    img/s  rss MiB  alloc MiB  x floor  x ref
    acmix    1x64x56x56   eager-reference             95.120   101.30     10.5     60.1      134.5    731.1   1.00

`x floor`: median / the memory-traffic floor (bytes the module must move / copy
bandwidth); `x ref`: the eager reference's median / this median (> 1 is faster).
"""

from __future__ import annotations

from typing import Any

MIB = float(1 << 20)
HEADER = (f"{'module':<11} {'input':<12} {'backend':<22} {'median ms':>10} {'p90 ms':>9} {'img/s':>9} "
          f"{'rss MiB':>8} {'alloc MiB':>9} {'x floor':>8} {'x ref':>6}")


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def _mib(value: int | None) -> float | None:
    return value / MIB if isinstance(value, int) else None


def format_row(module: str, shape: str, backend: str, e: dict[str, Any]) -> str:
    """One table row; a backend that did not run shows its status and reason instead of figures."""
    lead = f"{module:<11} {shape:<12} {backend:<22}"
    if e.get("status") != "ok":
        reason = str(e.get("reason", ""))
        return f"{lead} {e.get('status', '?')}: {reason if len(reason) <= 110 else reason[:107] + '...'}"
    return (f"{lead} {_num(e.get('median_ms'), 10, 3)} {_num(e.get('p90_ms'), 9, 3)} "
            f"{_num(e.get('throughput_per_s'), 9, 1)} {_num(_mib(e.get('peak_rss_bytes')), 8, 1)} "
            f"{_num(_mib(e.get('alloc_peak_bytes')), 9, 1)} {_num(e.get('x_floor'), 8, 1)} "
            f"{_num(e.get('speedup_vs_reference'), 6, 2)}")


def format_table(result: dict[str, Any]) -> str:
    """The whole table: rows per module, shape and runnable backend; a footer with settings and skips."""
    lines = [HEADER]
    skipped: dict[str, str] = {}
    for cell in result["results"]:
        floor = cell["floor"]
        for backend, entry in cell["backends"].items():
            if entry.get("status") == "skipped":
                skipped[backend] = entry.get("reason", "")
                continue
            lines.append(format_row(cell["module"], cell["input"], backend, entry))
        lines.append(f"{'':<11} {'':<12} {'memory floor':<22} {_num(floor.get('ms'), 10, 3)}   "
                     f"({floor['total'] / MIB:.2f} MiB: input {floor['input'] / MIB:.2f}, output "
                     f"{floor['output'] / MIB:.2f}, weights {floor['weights'] / MIB:.3f})")
    bw = result["copy_bandwidth_gb_s"]
    env = result["environment"]
    lines.append(f"threads {env['threads']} of {env['cores']} cores; copy bandwidth {bw['used']:.2f} GB/s "
                 f"(start {bw['start']:.2f}, end {bw['end']:.2f}); {result['elapsed_s']:.0f} s")
    for backend, reason in skipped.items():
        lines.append(f"skipped {backend}: {reason}")
    return "\n".join(lines)


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per module and shape: medians of the main backends, x floor of onnxruntime, and the ratios."""
    rows = []
    for cell in result["results"]:
        b = cell["backends"]
        rows.append({"module": cell["module"], "input": cell["input"],
                     **{f"{k}_ms": b.get(k, {}).get("median_ms") for k in
                        ("eager-reference", "eager-deploy", "onnxruntime", "onnxruntime-reference")},
                     "onnxruntime_x_floor": b.get("onnxruntime", {}).get("x_floor"), **cell.get("ratios", {})})
    return rows


def format_markdown(result: dict[str, Any]) -> str:
    """The README's speed table: per module and input, median ms of each backend, onnxruntime's
    multiple of the memory floor and its speed-up over the eager reference ("n/a" where a
    backend did not run, e.g. a reference that does not export)."""

    def cell(value: float | None, digits: int = 3, suffix: str = "") -> str:
        return "n/a" if value is None else f"{value:.{digits}g}{suffix}"

    lines = ["| module | input | eager reference | eager deploy | onnxruntime | onnxruntime, reference graph "
             "| onnxruntime × memory floor | onnxruntime speed-up vs eager reference |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary_rows(result):
        lines.append(f"| {r['module']} | {r['input']} | {cell(r['eager-reference_ms'])} | {cell(r['eager-deploy_ms'])} "
                     f"| {cell(r['onnxruntime_ms'])} | {cell(r['onnxruntime-reference_ms'])} "
                     f"| {cell(r['onnxruntime_x_floor'], 2)} | {cell(r.get('onnxruntime_speedup'), 2, '×')} |")
    return "\n".join(lines)
