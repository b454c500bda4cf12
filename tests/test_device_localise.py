"""Localisation under a reduced-precision budget (what `verify` uses on an fp16 or INT8 graph): a module's tensor
diverges where its cosine with eager fp32 falls below the floor, not only where it is NaN or of another shape."""

from __future__ import annotations

import numpy as np

from attndeploy.localise.match import compare_tensors
from attndeploy.verdict.budget import reduced_budget


def test_a_tensor_below_the_cosine_floor_diverges_and_the_closest_candidate_is_kept():
    rng = np.random.default_rng(0)
    eager = rng.standard_normal((1, 8, 4, 4)).astype(np.float32)
    pairs = [(eager, eager.astype(np.float64))]
    close = eager + np.float32(1e-4) * rng.standard_normal(eager.shape).astype(np.float32)   # cosine ~1 - 5e-9
    far = eager + np.float32(0.2) * rng.standard_normal(eager.shape).astype(np.float32)      # cosine ~0.98
    budget = reduced_budget("fp16")
    assert compare_tensors(pairs, ["a"], {"a": close}, budget) == (True, None)
    verdict, worst = compare_tensors(pairs, ["a"], {"a": far}, budget)
    assert verdict is False and worst is not None and worst.tensor == "a" and worst.max_abs > 0.1
    assert compare_tensors(pairs, ["a", "b"], {"a": far, "b": close}, budget) == (True, None)  # a module's two outputs
