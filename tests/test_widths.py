"""Text output fits the terminal it is shown on: in an 80-column terminal no line of any table is longer than
80, dates and numbers are never cut, and in a pipe nothing is shortened."""

from __future__ import annotations

import os
import re

import pytest
from conftest import cli, on_a_pseudo_terminal

COMMANDS = [["report", "{demo}/ds003752"], ["status", "{demo}/ds003752"], ["rules", "list"],
            ["rules", "show", "default"], ["clean", "{demo}/ds003752"], ["audit", "{demo}"],
            ["plan", "{demo}/ds003752", "--action", "junk"], ["history", "--history", "{history}"]]


def on_a_terminal(args: list[str], columns: int) -> str:
    """What the command prints on a terminal ``columns`` wide (a real pseudo-terminal, as a user sees it)."""
    return on_a_pseudo_terminal(args, {**os.environ, "COLUMNS": str(columns), "LINES": "50"})[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("widths") / "demo"
    assert cli("demo", "--dir", folder, "--format", "json").exit_code == 0
    return folder


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(args[:2]) for args in COMMANDS])
def test_no_line_is_wider_than_an_80_column_terminal(demo, tmp_path, args):
    filled = [arg.format(demo=demo, history=tmp_path / "h.sqlite") for arg in args]
    text = on_a_terminal(filled, 80)
    assert text.strip(), "printed nothing"
    too_wide = [line for line in text.splitlines() if len(line) > 80 and ("  " in line.strip() or "---" in line)]
    assert not too_wide, "\n".join(too_wide)
    assert not re.search(r"\d…|…\d", text), "a number or a date was cut"


def test_status_evidence_wraps_to_the_terminal(demo):
    text = on_a_terminal(["status", f"{demo}/ds003752"], 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "recon-all.done" in text and "sub-01: finished (report written" in text


def test_descriptions_wrap_instead_of_being_cut(demo):
    text = on_a_terminal(["rules", "list"], 80)
    assert "…" not in text
    words = " ".join(" ".join(line.split()) for line in text.splitlines())
    assert "ASLPrep's safe default, the same judgement as fMRIPrep's default" in words


def test_a_pipe_gets_the_full_lines(demo):
    result = cli("rules", "list")
    assert any(len(line) > 80 for line in result.stdout.splitlines())  # whole lines, for grep and files
