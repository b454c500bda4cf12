"""Stage `bundle`: what the device needs, written beside the graphs (`attndeploy verify BUNDLE` reads it there).

    bundle.json          the manifest: graphs (file, precision, sha256), budgets per precision, the shape rule,
                         the profile, which file is which
    truth.npz            inputs at the engine's shapes (example, profile opt / min / max) with eager fp32 and
                         float64 outputs (`attndeploy.verdict.TruthData`)
    modules.npz          module-level references at the smallest of them (`attndeploy.bundle.references`)
    build_engine.sh      trtexec lines for TensorRT 8.6 / 10 / 11 (min/opt/max from the profile)
    triton/<name>/       a Triton model repository for the final graph (TensorRT accelerator for an fp16 graph)
    labels.txt, metadata.json   for detectors (the metadata never goes into an engine file)

Written only when every graph passed (a rejected graph has nothing to deploy), unless the
settings say `bundle=False`. Sizes are bounded (`bundle_truth.PROBE_LIMIT`, `MODULES_LIMIT`)
and reported: `report.json`'s `bundle` and one log line.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

from attndeploy.bundle import write_build_script, write_labels, write_metadata, write_triton_repository
from attndeploy.bundle.listing import format_size
from attndeploy.bundle.manifest import MANIFEST_FILE, BundleGraph, Manifest, sha256_of
from attndeploy.bundle.references import REFERENCES_FILE, describe_references
from attndeploy.errors import UsageError, first_line
from attndeploy.fileio import temp_path
from attndeploy.pipeline.candidate import Judged
from attndeploy.pipeline.judging import fp32_budget
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.pipeline.stages.bundle_truth import bundle_probes, engine_shapes, module_references
from attndeploy.truth.truth import Truth
from attndeploy.verdict import Budget, TruthData
from attndeploy.verdict.budget import reduced_budget
from attndeploy.version import __version__

TRUTH_FILE = "truth.npz"


def _save_truth(data: TruthData, path: Path) -> None:
    """`data.save` into a temp file renamed over `path` (atomic, the folder's usual permissions)."""
    tmp = temp_path(path)
    try:
        data.save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _literal(text: str) -> Any:
    """A metadata string as the value it spells (ultralytics writes dicts and lists as their repr), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _detector_files(model: PreparedModel, folder: Path) -> dict[str, str]:
    family = model.family
    if family.task is None or not family.metadata:
        return {}
    metadata = {k: _literal(v) for k, v in family.metadata.items()}
    files = {"metadata": write_metadata(folder, metadata).name}
    names = metadata.get("names")
    if isinstance(names, (dict, list)) and names:
        files["labels"] = write_labels(folder, names).name
    return files


def budgets(run: Run) -> dict[str, Budget]:
    """The budget of each precision, as the export judges it: fp32 (the rule on float64, or --atol/--rtol), fp16,
    INT8 (its target)."""
    return {"fp32": fp32_budget(run.settings), "fp16": reduced_budget("fp16"),
            "int8": reduced_budget("int8", run.settings.int8_target)}


def triton_name(name: str) -> str:
    """`name` as a Triton model name (letters, digits, `_ . -`, not starting with `.` or `-`)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return cleaned if cleaned and cleaned[0] not in ".-" else f"m{cleaned}"


def _file_sizes(folder: Path, files: list[str]) -> list[dict[str, Any]]:
    found = []
    for rel in files:
        path = folder / rel
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found += [{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size} for p in paths]
    return found


def bundle(run: Run, model: PreparedModel, truth: Truth, graphs: list[Judged], final: Judged) -> dict[str, Any]:
    """Write the bundle beside the graphs; returns what report.json's `bundle` says (files, sizes, notes).

    The manifest goes last and an earlier one first: a folder holds a `bundle.json` only beside a bundle that is
    whole. A writer's refusal (a graph Triton or trtexec cannot describe) is a note: the export itself passed.
    `final`: the graph the export hands back (the Triton repository serves it).
    """
    folder = final.written.parent
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    if not all(j.passed for j in graphs):
        run.note("no device bundle: a graph was rejected (nothing to deploy)")
        return {}
    try:
        return _write(run, model, truth, graphs, final)
    except UsageError as err:
        run.note(f"no device bundle: {first_line(err)}")
        return {"error": str(err)}


def _write(run: Run, model: PreparedModel, truth: Truth, graphs: list[Judged], final: Judged) -> dict[str, Any]:
    folder = final.written.parent
    shapes = engine_shapes(run, model, truth, final.candidate.proto)
    probes = bundle_probes(run, truth, shapes)
    _save_truth(truth.data(probes), folder / TRUTH_FILE)
    smallest = min(probes, key=lambda p: p.x.size)
    refs = module_references(run, truth, smallest, [j.candidate.proto for j in graphs])
    if refs is not None:
        refs.save(folder / REFERENCES_FILE)
    else:
        (folder / REFERENCES_FILE).unlink(missing_ok=True)
    files = {"truth": TRUTH_FILE, **({"modules": REFERENCES_FILE} if refs is not None else {})}
    files["build_script"] = write_build_script([j.written for j in graphs], folder, model.input_name, *shapes).name
    name = triton_name(run.name)
    triton = write_triton_repository(final.written, folder, name, max_batch=shapes[2][0],
                                     tensorrt_accelerator=final.candidate.precision == "fp16")
    files["triton"] = triton.relative_to(folder).as_posix()
    files.update(_detector_files(model, folder))
    manifest = Manifest(
        name=run.name, input_name=model.input_name, output_names=list(truth.output_names),
        graphs=[BundleGraph(j.written.name, j.candidate.precision, sha256_of(j.written)) for j in graphs],
        budgets=budgets(run), truth_file=TRUTH_FILE, truth_shapes=[p.shape for p in probes],
        reference=truth.reference, profile=dict(zip(("min", "opt", "max"), shapes)),
        shape_rule=truth.rule.describe() if truth.rule is not None else "",
        modules_file=REFERENCES_FILE if refs is not None else None, modules_shape=refs.shape if refs else None,
        files=files, notes=[n for n in run.details if n.startswith("bundle:")], version=__version__,
        row_outputs=list(model.family.row_outputs))
    manifest.save(folder)
    listed = _file_sizes(folder, [MANIFEST_FILE, *[g.file for g in manifest.graphs], *files.values()])
    total = sum(f["bytes"] for f in listed)
    labels = ", ".join(p.label for p in probes)
    run.log(f"bundle: {len(listed)} files, {format_size(total)} in {folder} (truth at {labels}"
            + (f"; module references at {smallest.label}" if refs is not None else "") + ")")
    return {"folder": str(folder), "manifest": MANIFEST_FILE, "files": listed, "total_bytes": total,
            "truth_shapes": [p.label for p in probes], "truth_bytes": (folder / TRUTH_FILE).stat().st_size,
            "modules": describe_references(refs) if refs is not None else None,
            "profile": {k: list(v) for k, v in manifest.profile.items()}, "notes": manifest.notes}


__all__ = ["TRUTH_FILE", "budgets", "bundle", "triton_name"]
