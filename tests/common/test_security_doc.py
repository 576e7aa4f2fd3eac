"""docs/security.md names, for each control, the test that proves it: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_security_page_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", text)
    assert len(named) > 15
    last_file = None
    for file, test in named:
        path = ROOT / file
        assert path.is_file(), file
        last_file = path
        if test:
            functions = {
                n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
            }
            assert test[2:] in functions, f"{file}{test}"
    # `::name` right after a file in the same cell refers to that file
    for test in re.findall(r"`::(\w+)`", text):
        files = [ROOT / f for f, _ in named]
        assert any(
            test in {n.name for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef)}
            for p in files
        ), test
    assert last_file is not None
