"""A user's file that exits at import (issue 18): a research script whose argparse parses *our* argv prints its usage
and error and calls sys.exit(2). The export says so in one stderr line (exit 2) naming argparse's own error; what a
file prints on a normal import still reaches stderr."""

from __future__ import annotations

import sys

import pytest

from tests.bad_input_helpers import refused, run_main

ARGPARSE_AT_IMPORT = '''
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
args = parser.parse_args()


def build():
    return torch.nn.Conv2d(3, 4, 3)
'''

PRINTS = '''
import torch
print("loading my model file")


def build():
    print("building", flush=True)
    return torch.nn.Conv2d(3, 4, 3)
'''


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("where", ["file", "factory"])
def test_argparse_exiting_in_user_code_is_one_line(where, folder, capsys):
    source = ARGPARSE_AT_IMPORT if where == "file" else ARGPARSE_AT_IMPORT.replace(
        "args = parser.parse_args()\n", "").replace("    return torch", "    parser.parse_args()\n    return torch")
    (folder / "net.py").write_text(source)
    line = refused(capsys, ["export", "net.py:build", "--input", "1x3x8x8", "--out", "o", "--json"],
                   "tried to exit the process", "SystemExit(2) after printing",
                   "error: the following arguments are required: --lr")
    assert ("(on import)" in line) == (where == "file")
    assert not (folder / "o").exists()


def test_what_a_user_file_prints_on_a_good_import_is_kept(folder, capsys, monkeypatch):
    monkeypatch.setattr("attndeploy.pipeline.export_stage", lambda *a, **k: pytest.fail("no export needed"))
    (folder / "net.py").write_text(PRINTS)
    with pytest.raises(pytest.fail.Exception):
        run_main(capsys, "export", "net.py:build", "--input", "1x3x8x8", "--out", "o")
    err = capsys.readouterr().err
    assert "loading my model file\n" in err and "building\n" in err


def test_held_output_passes_through_past_its_limit(capsys):
    """A block that prints more than HELD_LIMIT characters is not held in memory: it streams out, in order."""
    from attndeploy.usercode import HELD_LIMIT, calling_user_code

    with calling_user_code("a chatty forward", hold_output=True):
        print("first")
        sys.stderr.write("x" * (HELD_LIMIT + 1) + "\n")
        streamed = capsys.readouterr()
        print("last")
    assert streamed.out == "first\n" and len(streamed.err) == HELD_LIMIT + 2
    assert capsys.readouterr().out == "last\n"
