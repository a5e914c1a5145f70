"""Rich output for the CLI: the narrator that renders pipeline stages and progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from shipyard.pipeline.narration import StageReport

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class RichNarrator:
    """Prints one heading per stage, what happened in a line or two, and progress bars."""

    def __init__(self, out: Console = console) -> None:
        self.out = out

    def begin(self, stage: str) -> None:
        self.out.print(f"[bold cyan]▶ {stage}[/]")

    def say(self, text: str) -> None:
        self.out.print(f"   {text}")

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        columns = (
            TextColumn("   {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(
            *columns, console=self.out, transient=True, disable=not self.out.is_terminal
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda advance: bar.advance(task, advance)

    def end(self, report: StageReport) -> None:
        self.out.print(f"   [green]✓[/] {report.summary} [dim]({report.seconds:.1f} s)[/]")
