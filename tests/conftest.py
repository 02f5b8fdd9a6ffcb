"""Shared test helpers."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="session")
def load_script():
    """Import a script that is not a package module (``scripts/``, ``benchmarks/``) by its path from the repo root."""
    def load(relative: str):
        path = ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


# Module fixtures that score hundreds of true renders with the oracle (its calibration): every test that uses one
# is slow, and runs in CI's second step (`./scripts/test.sh -m slow`), not in the README's test command.
SLOW_FIXTURES = {"truth_rows", "corrupted", "edit_scores", "truth_and_random", "smoke_reports"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
