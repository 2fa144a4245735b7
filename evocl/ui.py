"""What a person sees during and after a search: a rich progress bar and the Pareto-front table.

The runner emits ``started(info)``, ``told(candidate, result, stats)`` and ``finished(summary)``
to any object with those methods; :class:`SearchProgress` draws them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from evocl.records import Candidate, Result


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


class SearchProgress:
    """Evaluations done / total, failures, elapsed and ETA, and the current best per objective."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._objectives: list[tuple[str, str]] = []

    def started(self, info: dict[str, Any]) -> None:
        self._objectives = list(info.get("objectives", []))
        self._progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
            console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(
            "search", total=info.get("total"), completed=info.get("n_told", 0),
            failed=info.get("n_failed", 0), best="")
        if info.get("resumed"):
            self.console.print(f"resuming {info['run_dir']}: {info.get('n_told', 0)} evaluations on record")

    def told(self, candidate: Candidate, result: Result, stats: dict[str, Any]) -> None:
        if self._progress is None:
            return
        best = "  ".join(f"{n} {_fmt(stats['best'][n])}" for n, _ in self._objectives if n in stats.get("best", {}))
        self._progress.update(self._task, completed=stats["n_told"], total=stats.get("total"),
                              failed=stats["n_failed"], best=f"best: {best}" if best else "")
        if not result.ok:
            self._progress.console.print(f"[yellow]candidate {candidate.id} failed:[/] {result.error}")

    def finished(self, summary: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def front_table(front: Sequence[tuple[Candidate, Result]], objectives: Sequence[Any],
                title: str = "Pareto front", max_params: int = 6) -> Table:
    """The Pareto front as a table: id, objectives, and the configuration (abbreviated)."""
    table = Table(title=title)
    table.add_column("id", justify="right")
    for o in objectives:
        table.add_column(f"{o.name} ({'max' if o.direction == 'maximize' else 'min'})", justify="right")
    table.add_column("configuration")
    for c, r in sorted(front, key=lambda e: e[0].id):
        cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in c.config.items())
        table.add_row(str(c.id), *(_fmt(r.objectives.get(o.name, float("nan"))) for o in objectives), cfg)
    return table


def print_summary(summary: Any, run_dir: str, console: Console | None = None) -> None:
    """The end of a search: counts, stop reason, hypervolume and the Pareto-front table."""
    from evocl.storage import read_run

    console = console or Console()
    view = read_run(run_dir)
    objectives = list(view.space.objectives)
    console.print(front_table(summary.pareto_front, objectives))
    console.print(
        f"{summary.n_evaluated} evaluations ({summary.n_failed} failed) in {summary.wall_time:.0f} s; "
        f"stopped: {summary.stop_reason}; hypervolume {_fmt(summary.hypervolume)}")
    if summary.n_pending:
        console.print(f"{summary.n_pending} candidates in flight were not finished: "
                      f"`evocl resume {run_dir}` evaluates them")
    console.print(f"run directory: {run_dir}  (report: `evocl report {run_dir}`, "
                  f"export: `evocl export {run_dir} --format yaml --out best.yaml`)")
