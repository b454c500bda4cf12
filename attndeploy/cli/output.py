"""What the CLI writes: progress and errors on stderr, results on stdout (one JSON object with --json).

A leaf module: every command imports it, it imports none of them.
"""

from __future__ import annotations

import json
import sys


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))
