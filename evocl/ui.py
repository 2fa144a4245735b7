"""What a person sees after a search: the Pareto-front table and where things are.

(The progress bar during a search is :class:`evocl.progress.RichProgress`.)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from evocl.records import Candidate, Result


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def front_table(front: Sequence[tuple[Candidate, Result]], objectives: Sequence[Any],
                title: str = "Pareto front", max_params: int = 6) -> Table:
    """The Pareto front as a table: id, objectives, and the configuration (abbreviated)."""
    table = Table(title=title)
    table.add_column("id", justify="right")
    for o in objectives:
        table.add_column(f"{o.name} ({'max' if o.direction == 'maximize' else 'min'})", justify="right")
    table.add_column("configuration", overflow="fold")
    for c, r in sorted(front, key=lambda e: e[0].id):
        cfg = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.config.items())
        table.add_row(str(c.id), *(_fmt(r.objectives.get(o.name, float("nan"))) for o in objectives), cfg)
    return table


def print_summary(summary: Any, run_dir: str, console: Console | None = None) -> None:
    """The end of a search: counts, stop reason, hypervolume and the Pareto-front table."""
    from evocl.storage import read_run

    console = console or Console()
    view = read_run(run_dir)
    objectives = list(view.space.objectives)
    console.print(front_table(summary.pareto_front, objectives))
    if getattr(summary, "n_pruned", 0):
        console.print(f"{summary.n_pruned} candidates pruned early (stopped after a rung; about "
                      f"{summary.seconds_saved:.0f}s of evaluation saved); never on the front")
    if summary.n_pending:
        console.print(f"{summary.n_pending} candidates in flight were not finished: "
                      f"`evocl resume {run_dir}` evaluates them")
    console.print(f"run directory: {run_dir}  (report: `evocl report {run_dir}`, "
                  f"export: `evocl export {run_dir} --format yaml --out best.yaml`)")
