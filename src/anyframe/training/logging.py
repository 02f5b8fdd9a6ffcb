"""Training logs: a JSONL metrics file, TensorBoard when it is installed, and a rich progress bar.

``metrics.jsonl`` is always valid JSONL: a non-finite number (a NaN gradient norm before the first synced
step) is written as ``null``, and a line a killed run left half-written is skipped, with a warning naming
the file and line, both when a resumed run rewrites the file and when :func:`read_metrics` reads it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from anyframe.io import atomic_path
from anyframe.progress import progress_bar


class MetricsLogger:
    """Writes ``metrics.jsonl`` (one JSON object per log step, appended across resumes — records past the
    resumed step are dropped first) and shows loss, steps/s and ETA. Inactive on non-main processes."""

    def __init__(self, output_dir: Path, enabled: bool = True, total: int = 0, start: int = 0, progress: bool = True):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._tb = None
        self._progress = None
        if not enabled:
            return
        if self.path.is_file():
            # A run killed after its last checkpoint logged steps that the resumed run logs again: keep the
            # curve single-valued by dropping records past the step this run starts from (0: a fresh run).
            # A line a kill cut short is dropped too (with a warning), so the appends below stay valid JSONL.
            text = self.path.read_text(encoding="utf-8", errors="replace")
            records = _parse(self.path, text)
            kept = [line if "NaN" not in line and "Infinity" not in line else json.dumps(finite(record))
                    for line, record in records if _step(record) <= start]
            if kept != text.splitlines() or (text and not text.endswith("\n")):
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        try:  # optional dependency
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        except ImportError:
            self._tb = None
        if progress:
            self._progress = progress_bar("loss {task.fields[loss]}", "{task.fields[rate]} steps/s", label="[bold]train")
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, completed=start, loss="-", rate="-")

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = finite(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, record["step"])
        if self._progress is not None and isinstance(record.get("steps_per_s"), float):
            self._progress.update(self._task, rate=f"{record['steps_per_s']:.2f}")

    def advance(self, step: int, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=f"{loss:.4f}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def finite(value):
    """``value`` with every non-finite float (NaN, ±inf) replaced by ``None``: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _step(record: dict) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else 0


def _parse(path: Path, text: str) -> list[tuple[str, dict]]:
    """(line, record) for each valid line of a metrics file; the others (a line a kill cut short) are skipped
    with one warning naming the file and their line numbers. (Bare ``NaN`` that older versions wrote is read.)"""
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append((line, record))
        else:
            bad.append(number)
    if bad:
        where = f"line {bad[0]}" if len(bad) == 1 else f"lines {', '.join(map(str, bad))}"
        warnings.warn(f"{path}, {where}: not a complete JSON record (a run killed mid-write?): skipped")
    return records


def read_metrics(output_dir: str | Path) -> list[dict]:
    """The records of ``output_dir/metrics.jsonl`` (none if it is absent); damaged lines are skipped with a warning."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [record for _, record in _parse(path, path.read_text(encoding="utf-8", errors="replace"))]
