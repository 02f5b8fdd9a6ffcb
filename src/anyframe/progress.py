"""The project's progress bars (rich): one look for every long command — a label, the bar, done/total, any extra
fields (loss, steps/s), elapsed time and ETA."""

from __future__ import annotations

import contextlib
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(*fields: str, label: str = "[bold]{task.description}", stderr: bool = False,
                 transient: bool = False) -> Progress:
    """A rich :class:`Progress` in the project's style; ``fields`` are extra text columns between the count and the
    clock (e.g. ``"loss {task.fields[loss]}"``); ``stderr``: draw on stderr (commands whose stdout is data);
    ``transient``: removed when done."""
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, transient=transient, **({"console": Console(stderr=True)} if stderr else {}))


class StageBars:
    """Bars on stderr, one per stage of a long job (``task(label, total)``, then ``advance(task)``); inert when
    ``enabled`` is False."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._stack = contextlib.ExitStack()
        self._progress: Progress | None = None

    def __enter__(self) -> Self:
        if self.enabled:
            self._progress = self._stack.enter_context(progress_bar(stderr=True))
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def task(self, label: str, total: int, **fields):
        return None if self._progress is None else self._progress.add_task(label, total=total, **fields)

    def advance(self, task, amount: int = 1) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=amount)
