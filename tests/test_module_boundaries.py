"""A module's underscored names are its own: no other module of envelope imports them.

A name another module needs is public in the module that owns it (or moves
to where it belongs), so a change to a private helper never breaks a module
that was not looking.
"""

from __future__ import annotations

import ast
from pathlib import Path

import envelope

ROOT = Path(envelope.__file__).parent


def test_no_module_imports_another_modules_private_name() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("envelope")):
                found += [f"{path.relative_to(ROOT.parent)}:{node.lineno}: {'.' * node.level}{node.module or ''}"
                          f" import {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []
