from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # The cores shared out between the xdist workers before torch starts its OpenMP pool: two workers of two
    # spinning threads each on the README's 2 cores run the suite about 3x slower than one thread each.
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def cli():
    """`attndeploy.cli.main.main`: run the CLI in-process, returning its exit code."""
    from attndeploy.cli.main import main

    return main


def readme_grid_args() -> list[str]:
    """The grid recorded in the README's support-table start marker."""
    from attndeploy.matrix.readme import read_block

    return read_block(README.read_text(encoding="utf-8"), "README.md").args


@pytest.fixture(scope="session")
def readme_cell(tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """`readme_cell(cell) -> (CellResult, folder of the kept graphs)`: one cell of the README's grid, run as
    `attndeploy matrix --readme` runs it, once per suite run: the result is shared between the xdist workers
    through this run's base temp folder, under a lock per cell (a worker that wants a cell another is running
    waits for it; with `wait=False` it gets None instead, and can take another cell meanwhile)."""
    from filelock import FileLock, Timeout

    from attndeploy.matrix import kept_graph, parse_grid, run_cell

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "readme-grid"
    folder.mkdir(exist_ok=True)
    trt = parse_grid(readme_grid_args()).trt_columns()

    def get(cell, wait=True):
        stem = kept_graph(folder, cell).with_suffix("")
        try:
            lock = FileLock(f"{stem}.lock", timeout=-1 if wait else 0)
            lock.acquire()
        except Timeout:
            return None
        try:
            done = Path(f"{stem}.pickle")
            if done.exists():
                return pickle.loads(done.read_bytes()), folder
            result = run_cell(cell, trt, seed=0, keep=folder)
            done.write_bytes(pickle.dumps(result))
            return result, folder
        finally:
            lock.release()

    return get
