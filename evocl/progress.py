"""A rich progress display for ``run_search(progress=RichProgress())``.

Shows evaluations done / total, failures, elapsed time, ETA, generation, hypervolume and the
best value seen per objective. Any object with optional ``started(info)``,
``told(candidate, result, stats)`` and ``finished(summary)`` methods (or a callable
``progress(event, *args)``) works with the runner; this is the default one.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class RichProgress:
    """Progress bar over evaluations; the description line carries failures and bests."""

    def __init__(self, console: Console | None = None, transient: bool = False):
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._objectives: list[tuple[str, str]] = []
        self.transient = transient

    def started(self, info: dict[str, Any]) -> None:
        self._objectives = list(info.get("objectives", []))
        self._progress = Progress(
            TextColumn("[bold]evocl[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=self.transient)
        self._progress.start()
        self._task = self._progress.add_task(
            "search", total=info.get("total"), completed=info.get("n_told", 0),
            status=self._status(info.get("n_failed", 0), {}, None, None))
        if info.get("resumed"):
            self.console.print(f"resumed {info['run_dir']} at {info.get('n_told', 0)} evaluations")

    def _status(self, failed: int, best: dict[str, float], gen: int | None,
                hv: float | None, pruned: int = 0) -> str:
        parts = [f"[red]{failed} failed[/]" if failed else "0 failed"]
        if pruned:
            parts.append(f"{pruned} pruned")
        if gen is not None:
            parts.append(f"gen {gen}")
        if hv is not None and hv == hv:
            parts.append(f"HV {hv:.4g}")
        for name, direction in self._objectives:
            if name in best:
                parts.append(f"{name} {'↑' if direction == 'maximize' else '↓'}{best[name]:.4g}")
        return " | ".join(parts)

    def told(self, candidate: Any, result: Any, stats: dict[str, Any]) -> None:
        if self._progress is None:
            return
        self._progress.update(self._task, completed=stats["n_told"], total=stats.get("total"),
                              status=self._status(stats["n_failed"], stats.get("best", {}),
                                                  stats.get("generation"),
                                                  stats.get("hypervolume"),
                                                  stats.get("n_pruned", 0)))
        if result.status == "failed":
            self._progress.console.print(f"[yellow]candidate {candidate.id} failed:[/] "
                                         f"{(result.error or '')[:200]}")

    def finished(self, summary: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        pruned = f"{summary.n_pruned} pruned, " if getattr(summary, "n_pruned", 0) else ""
        self.console.print(f"stopped: {summary.stop_reason}; {summary.n_evaluated} evaluated, "
                           f"{summary.n_failed} failed, {pruned}"
                           f"Pareto front {len(summary.pareto_front)}, "
                           f"HV {summary.hypervolume:.4g}, {summary.wall_time:.1f}s")
