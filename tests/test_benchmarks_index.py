"""benchmarks/README.md indexes every benchmark script with its one current result; the results it lists exist,
every file of benchmarks/results/ belongs to one of them, and none cites a temporary path."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"


def _index() -> dict[str, str | None]:
    """``{script: its current result's path under results/, or None}``, from the README's sections."""
    text = (BENCHMARKS / "README.md").read_text()
    sections = re.split(r"^### `([^`]+)`\s*$", text, flags=re.MULTILINE)[1:]
    index = {}
    for script, body in zip(sections[::2], sections[1::2]):
        line = re.search(r"^Current result: (.*)$", body, flags=re.MULTILINE)
        assert line, f"benchmarks/README.md: {script} has no 'Current result:' line"
        link = re.match(r"\[`[^`]+`\]\(results/([^)]+)\)", line.group(1))
        assert link or line.group(1).startswith("—"), f"{script}: a result is a link into results/, or — (why)"
        assert script not in index, f"{script} is indexed twice"
        index[script] = link.group(1) if link else None
    return index


def test_every_script_is_indexed_with_its_current_result():
    index = _index()
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py"))
    assert [s for s in scripts if s not in index] == []
    assert [s for s in index if s not in scripts] == []  # nor a script that is gone
    missing = [f"{s}: results/{r}" for s, r in index.items() if r is not None and not (RESULTS / r).is_file()]
    assert missing == []


def test_every_result_file_belongs_to_an_indexed_result():
    """One current result per script: a file of results/ is an indexed result, or a companion of one (its JSON, its
    plots: the same name, or a plot named NAME_*.png), or lies in an indexed result's own folder (default_model/)."""
    results = [r for r in _index().values() if r is not None]
    stems = {str(Path(r).with_suffix("")) for r in results}
    folders = {str(Path(r).parent) for r in results} - {"."}
    strays = []
    for path in sorted(p for p in RESULTS.rglob("*") if p.is_file()):
        rel = path.relative_to(RESULTS)
        name = str(rel.with_suffix(""))
        plot = rel.suffix == ".png" and any(name.startswith(f"{s}_") for s in stems)
        if not (str(rel.parent) in folders or name in stems or plot):
            strays.append(str(rel))
    assert strays == [], f"not the current result of any indexed script (archive it in docs/experiments.md): {strays}"


def test_no_result_cites_a_temporary_path():
    citing = [str(p.relative_to(RESULTS)) for p in sorted(RESULTS.rglob("*")) if p.is_file() and b"/tmp/" in p.read_bytes()]
    assert citing == []
