"""evocl: evolutionary search for continual-learning configurations of transformer models.

    import evocl
    summary = evocl.search(run_dir="runs/py", population=8, generations=3, workers=2)

The command line (``evocl search``) and this function build the same RunConfig and call the
same runner; heavy libraries (torch, Ray) are imported only when a search starts.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "search"]


def search(run_dir: str, space: str = "cl_lora", *, resume: bool = False, progress: Any = None,
           baseline: bool | None = None, trust_objective: bool = False,
           trust_run_settings: bool = False, **settings: Any) -> Any:
    """Run (or, with ``resume=True``, continue) a search; return the runner's RunSummary.

    ``space`` is a YAML path or a shipped name (``cl_lora``, ``tiny``); ``settings`` are
    RunConfig fields (stream, backbone, algorithm, population, generations, budget, workers,
    gpus_per_eval, seed, evaluator_options, ...). ``baseline`` (default: on for CL searches)
    evaluates the space's defaults first: sequential fine-tuning for ``cl_lora.yaml``.
    Resuming a run whose objective is not ``cl`` needs ``objective=`` named again (or
    ``trust_objective=True``): a run directory is data, and the code it names is not imported
    on its word. Nor are run.yaml's network and resource settings used on resume (workers,
    executor, cpus/gpus per eval, Ray address and dashboard, storage URL): name them here again
    or pass ``trust_run_settings=True``.
    """
    from evocl.records import RunConfig
    from evocl.runner import run_search
    from evocl.space import load, resolve_space

    if resume:
        from evocl.runner import resume_plan

        cfg, keep = resume_plan(run_dir, objective=settings.get("objective"),
                                trust_objective=trust_objective, named=settings,
                                trust_run_settings=trust_run_settings)
        return run_search(cfg.replace(**settings), resume=True, progress=progress, keep=keep)
    path = resolve_space(space)
    if baseline is None:
        baseline = settings.get("objective", "cl") == "cl"
    if baseline and "initial" not in settings:
        settings["initial"] = [load(path).default_config()]
    if not any(settings.get(k) is not None for k in ("generations", "budget", "max_wall_time")):
        settings["generations"] = 3
    cfg = RunConfig(space=str(path), run_dir=str(run_dir), **settings)
    return run_search(cfg, progress=progress)
