"""The dependency direction, read from the imports: layers -> core and storage, never sideways."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shipyard

PACKAGE = Path(shipyard.__file__).parent
LAYERS = ("ingest", "validate", "train", "registry", "serve", "monitor", "scenarios")
ALLOWED: dict[str, set[str]] = {
    "core": {"core", "_version"},
    "storage": {"core", "storage", "_version"},
    **{layer: {layer, "core", "storage", "_version"} for layer in LAYERS},
}


def _runtime_imports(path: Path) -> set[str]:
    """Top-level shipyard subpackages imported at run time (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "shipyard" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for path in files:
        illegal = _runtime_imports(path) - ALLOWED[package]
        assert not illegal, f"{path.relative_to(PACKAGE)} imports shipyard.{sorted(illegal)}"


def test_every_layer_exists() -> None:
    for layer in (*LAYERS, "core", "storage", "pipeline", "cli"):
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


def test_the_checker_sees_a_sideways_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from shipyard.serve import x\nimport shipyard.core.errors\n")
    assert _runtime_imports(module) == {"serve", "core"}
