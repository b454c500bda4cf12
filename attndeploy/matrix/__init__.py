"""`attndeploy matrix`: registry modules x opsets x exporters x static/dynamic, each an independent export.

    >>> from attndeploy.matrix import parse_grid, run_matrix, to_markdown
    >>> grid = parse_grid(["se", "--opsets", "17,18"])
    >>> results = run_matrix(grid)                 # list[CellResult], in grid order
    >>> print(to_markdown(grid, results))

`grid` (arguments, also read from the README's start marker), `cells` (running one
export and its lint; a process pool for `jobs` > 1), `render` (Markdown, text, JSON),
`readme` (the block between the README's markers).
"""

from __future__ import annotations

from pathlib import Path

from attndeploy.matrix.cells import CellResult, kept_graph, run_cell, run_cells
from attndeploy.matrix.grid import Cell, Grid, parse_grid
from attndeploy.matrix.readme import read_readme
from attndeploy.matrix.render import to_json, to_markdown, to_text


def run_matrix(grid: Grid, jobs: int = 1, progress: bool = False, seed: int = 0,
               keep: Path | None = None) -> list[CellResult]:
    """Run every cell of `grid` (see `cells.run_cell`; `keep`: a folder for the passing cells' graphs); `jobs`
    processes; results in grid order."""
    return run_cells(grid.cells(), grid.trt_columns(), jobs, progress, seed, keep)


def regenerate_readme_block(readme: Path, jobs: int = 1, progress: bool = False) -> tuple[str, str]:
    """(current body, freshly generated Markdown) for the grid recorded in `readme`'s start marker."""
    _, block = read_readme(readme)
    grid = parse_grid(block.args)
    return block.body, to_markdown(grid, run_matrix(grid, jobs, progress))


__all__ = ["Cell", "CellResult", "Grid", "kept_graph", "parse_grid", "regenerate_readme_block", "run_cell", "run_matrix",
           "to_json", "to_markdown", "to_text"]
