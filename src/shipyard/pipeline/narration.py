"""How the pipeline reports progress: the CLI renders it with Rich, tests stay quiet."""

from __future__ import annotations

import contextlib
import time
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


class Stage:
    """Times one stage, announces it, and appends its report to ``reports`` when done."""

    def __init__(self, narrator: Narrator, reports: list[StageReport], name: str) -> None:
        self.narrator, self.reports, self.name = narrator, reports, name

    def __enter__(self) -> Stage:
        self.narrator.begin(self.name)
        self.started = time.perf_counter()
        return self

    def done(self, summary: str, **details: Any) -> None:
        report = StageReport(self.name, time.perf_counter() - self.started, summary, details)
        self.reports.append(report)
        self.narrator.end(report)

    def __exit__(self, *exc: object) -> None:
        return None
