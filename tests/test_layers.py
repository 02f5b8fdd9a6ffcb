"""The package's import layering (pyproject's [tool.importlinter] contracts) holds, and the checker would see a
break: a contract the code is known to break fails."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


@pytest.fixture(scope="module")
def lint():
    if not Path(LINT).exists():
        pytest.fail("lint-imports is not installed (import-linter is a dev dependency: scripts/setup.sh)")

    def run(*args):
        # check=False: the tests read the exit code themselves, and show lint-imports' report when it fails
        return subprocess.run([LINT, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)

    return run


def test_the_layers_hold(lint):
    result = lint()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_broken_contract_is_reported(lint, tmp_path):
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_package = anyframe\n\n"
        "[importlinter:contract:known-break]\nname = pipelines without conditioning\ntype = forbidden\n"
        "source_modules = anyframe.pipelines\nforbidden_modules = anyframe.conditioning\n"
    )
    result = lint("--config", str(config))
    assert result.returncode != 0 and "BROKEN" in result.stdout
