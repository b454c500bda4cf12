"""The README's support table: the Markdown between `<!-- matrix:start ARGS -->` and `<!-- matrix:end -->`.

ARGS are the grid arguments (`--opsets 13,17,18,20`, names, ...) the table was made
with; `read_block` returns them with the current text so the table can be regenerated
and compared, and `replace_block` writes a new table in place.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from attndeploy.errors import UsageError, require

START = re.compile(r"<!--\s*matrix:start(?P<args>[^>]*?)\s*-->[ \t]*\n?")
END = re.compile(r"<!--\s*matrix:end\s*-->")


@dataclass(frozen=True)
class Block:
    """`args`: the start marker's grid arguments; `body`: the text between the markers; `start`/`end`: offsets."""

    args: list[str]
    body: str
    start: int
    end: int


def read_block(text: str, source: str = "README") -> Block:
    """The matrix block of `text`; `UsageError` unless exactly one start marker precedes an end marker."""
    starts = list(START.finditer(text))
    require(len(starts) == 1, f"{source} must hold exactly one '<!-- matrix:start ... -->' marker",
            "one start marker, e.g. <!-- matrix:start --opsets 13,17,18,20 -->", f"{len(starts)} found")
    end = END.search(text, starts[0].end())
    if end is None:
        raise UsageError(f"{source} must close the matrix block", "<!-- matrix:end --> after the start marker",
                         "no end marker")
    try:
        args = shlex.split(starts[0].group("args"))
    except ValueError as err:
        raise UsageError("the matrix start marker's arguments must parse", "e.g. --opsets 13,17", str(err)) from err
    return Block(args, text[starts[0].end():end.start()], starts[0].end(), end.start())


def replace_block(text: str, body: str, source: str = "README") -> str:
    """`text` with the matrix block's body replaced by `body` (markers kept)."""
    block = read_block(text, source)
    return text[:block.start] + body + text[block.end:]


def read_readme(path: Path) -> tuple[str, Block]:
    require(path.is_file(), "the README must exist", "an existing file with matrix markers", str(path))
    text = path.read_text(encoding="utf-8")
    return text, read_block(text, str(path))
