"""The truth as plain arrays: the probes' inputs with eager fp32 and float64 outputs; saved to one `.npz`.

    data = TruthData("float64", "", "images", ["output0"], [TruthProbe((1, 3, 640, 640), x, eager, reference)])
    data.save(path); TruthData.load(path)          # numpy only: the device bundle reads it without torch

`TruthProbe.x`: the input (N, C, H, W) float32 exactly as both sides saw it; `eager`: eager
fp32's outputs by graph output name (float32, or the model's integer dtype); `reference`:
the float64 run's (or, where the model cannot run in float64, the stand-in named by
`TruthData.reference`); `spread`, only where the input is ill-conditioned: per output, the
per-channel distance (C,) float64 of eager at another thread count to the reference (see
`attndeploy.verdict.rule`). Everything that judges a candidate reads these; nothing else runs
the eager model for reference.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.errors import UsageError

FORMAT = "attndeploy-truth/1"


@dataclass
class TruthProbe:
    """One input and what the eager model computed on it (see the module docstring)."""

    shape: tuple[int, ...]
    x: np.ndarray
    eager: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    spread: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "x".join(str(d) for d in self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + sum(a.nbytes for a in self.eager.values()) + sum(a.nbytes for a in
                                                                                     self.reference.values()))


@dataclass
class TruthData:
    """`reference`: "float64", or the stand-in ("fp32 at 1 thread ..."); `note`: why a stand-in was used."""

    reference: str
    note: str
    input_name: str
    output_names: list[str]
    probes: list[TruthProbe] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.probes)

    def save(self, path: Path) -> None:
        """One uncompressed `.npz`: the arrays, and a JSON header under `meta`."""
        arrays: dict[str, np.ndarray] = {}
        for i, probe in enumerate(self.probes):
            arrays[f"p{i}/x"] = probe.x
            for j, name in enumerate(self.output_names):
                arrays[f"p{i}/eager/{j}"] = probe.eager[name]
                arrays[f"p{i}/reference/{j}"] = probe.reference[name]
                if name in probe.spread:
                    arrays[f"p{i}/spread/{j}"] = probe.spread[name]
        header = {"format": FORMAT, "reference": self.reference, "note": self.note, "input_name": self.input_name,
                  "output_names": self.output_names, "shapes": [list(p.shape) for p in self.probes],
                  "meta": self.meta}
        arrays["meta"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with open(path, "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> TruthData:
        """Read a file `save` wrote (`UsageError` naming what is wrong with any other)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["meta"]).decode())
                if header.get("format") != FORMAT:
                    raise UsageError("a truth file must be attndeploy's", FORMAT, header.get("format"))
                names = list(header["output_names"])
                probes = [TruthProbe(tuple(shape), data[f"p{i}/x"],
                                     {n: data[f"p{i}/eager/{j}"] for j, n in enumerate(names)},
                                     {n: data[f"p{i}/reference/{j}"] for j, n in enumerate(names)},
                                     {n: data[f"p{i}/spread/{j}"] for j, n in enumerate(names)
                                      if f"p{i}/spread/{j}" in data})
                          for i, shape in enumerate(header["shapes"])]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            if isinstance(err, UsageError):
                raise
            raise UsageError("the truth file must be readable", f"an attndeploy {FORMAT} .npz",
                             f"{path}: {type(err).__name__}: {err}") from err
        return cls(header["reference"], header["note"], header["input_name"], names, probes, header.get("meta", {}))


__all__ = ["FORMAT", "TruthData", "TruthProbe"]
