"""How the pipeline reports progress: the CLI renders it with Rich, tests stay quiet."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class StageReport:
    """One finished stage: its name, wall time, a one-line summary and details."""

    name: str
    seconds: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class Narrator(Protocol):
    def begin(self, stage: str) -> None: ...

    def say(self, text: str) -> None: ...

    def progress(
        self, description: str, total: int
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...

    def end(self, report: StageReport) -> None: ...


class QuietNarrator:
    """Collects what would have been said (used by tests and library callers)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.reports: list[StageReport] = []

    def begin(self, stage: str) -> None:
        self.lines.append(f"[{stage}]")

    def say(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda advance: None

    def end(self, report: StageReport) -> None:
        self.reports.append(report)
