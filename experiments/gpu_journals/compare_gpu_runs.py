"""The project's GPU searches drawn by `evocl compare` and `evocl report`.

The fifteen journals in ``/work/shared/data/gpu-runs`` (one H100, 16 Ray workers, MiniLM; see
that folder's README) are bare ``journal.jsonl`` files. Each becomes a run directory here: its
journal plus a run.yaml rebuilt from what the README records (stream, algorithm, population 16,
budget 96, seed, the shipped ``cl_lora.yaml`` as of the runs' commit 5871e6d when git has it,
else today's). Then, per stream, one comparison page of nsga2 / async-nsga2 / optuna-tpe /
random, and the fANOVA importance of each run; a JSON summary goes to
``experiments/gpu_journals/results/gpu_compare.json``.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/gpu_journals/compare_gpu_runs.py
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evocl import __version__  # noqa: E402
from evocl.records import RunConfig  # noqa: E402
from evocl.report import baseline_of, write_report  # noqa: E402
from evocl.report.compare import best_by, held_out_accuracy, write_compare  # noqa: E402
from evocl.report.importance import parameter_importance  # noqa: E402
from evocl.report.plots import hypervolume_history, reference_point  # noqa: E402
from evocl.space import load  # noqa: E402
from evocl.storage import read_run  # noqa: E402
from evocl.storage.rundir import space_summary  # noqa: E402

GROUPS = {
    "default": ["def-nsga2", "def-async-nsga2", "def-optuna-tpe", "def-random"],
    "default-3-seeds": ["def-nsga2", "def-s1-nsga2", "def-s2-nsga2", "def-optuna-tpe",
                        "def-s1-optuna-tpe", "def-s2-optuna-tpe", "def-random", "def-s1-random",
                        "def-s2-random"],
    "other-stream": ["wn-nsga2", "wn-optuna-tpe", "wn-random"],
}
RUNS_COMMIT = "5871e6d"


def space_file(work: Path) -> Path:
    """cl_lora.yaml as the runs had it (git), else the shipped one."""
    out = work / "cl_lora.yaml"
    got = subprocess.run(["git", "show", f"{RUNS_COMMIT}:search_spaces/cl_lora.yaml"], cwd=ROOT,
                         capture_output=True, text=True)
    if got.returncode == 0:
        out.write_text(got.stdout)
        return out
    return ROOT / "search_spaces" / "cl_lora.yaml"


def make_run(journal: Path, runs: Path, space_path: Path) -> Path:
    """A run directory holding ``journal`` and a run.yaml describing its search."""
    name = journal.stem
    parts = name.split("-")
    stream = "default" if parts[0] == "def" else "other (wn)"
    seed = int(parts[1][1:]) if parts[1].startswith("s") and parts[1][1:].isdigit() else 0
    algorithm = "-".join(parts[2:] if seed or parts[1] == "s0" else parts[1:])
    space = load(space_path)
    cfg = RunConfig(space=str(space_path), run_dir=str(runs / name), stream=stream,
                    backbone="minilm", algorithm=algorithm, population=16, budget=96, seed=seed,
                    workers=16, executor="ray", gpus_per_eval=0.0625,
                    initial=[space.default_config()])
    run = runs / name
    run.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "evocl-run", "format_version": 1, "evocl_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": cfg.to_dict(), "space": space.to_dict(), **space_summary(space),
            "fingerprints": {"space": space.fingerprint, "stream": stream, "backbone": "minilm"},
            "changes": [], "rebuilt_from": str(journal)}
    (run / "run.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    shutil.copyfile(journal, run / "journal.jsonl")
    return run


def summarise(run: Path, ref) -> dict:
    view = read_run(run)
    ev = view.evaluations
    objectives = list(view.space.objectives)
    _, hv = hypervolume_history(ev, objectives, view.space.constraints, ref=ref)
    acc = next(o for o in objectives if o.name == "acc")
    best = best_by(ev, view.space, acc)
    base = baseline_of(ev, view.space)
    imp, note = parameter_importance(ev, view.space)
    top = {o: sorted(v.items(), key=lambda kv: -kv[1])[:3] for o, v in imp.items()}
    elapsed = [t for t in view.elapsed if t is not None]
    return {"run": run.name, "algorithm": view.config.algorithm, "seed": view.config.seed,
            "evaluations": len(ev), "failed": sum(1 for _, r in ev if not r.ok),
            "wall_time_s": max(elapsed) if elapsed else None,
            "hypervolume": hv[-1] if hv else None,
            "best_acc": best[1].objectives["acc"] if best else None,
            "best_acc_id": best[0].id if best else None,
            "best_acc_test": held_out_accuracy(best[1]) if best else None,
            "sequential_ft_acc": base[1].objectives["acc"] if base else None,
            "sequential_ft_test": held_out_accuracy(base[1]) if base else None,
            "importance_top3": {o: [[k, round(v, 3)] for k, v in kv] for o, kv in top.items()},
            "importance_note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--journals", type=Path, default=Path("/work/shared/data/gpu-runs"))
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "gpu_journals" / "results" / "gpu_compare")
    ap.add_argument("--json", type=Path, default=ROOT / "experiments" / "gpu_journals" / "results" / "gpu_compare.json")
    ap.add_argument("--work", type=Path, default=Path("/tmp/evocl-gpu-runs"))
    ap.add_argument("--with-report", action="store_true",
                    help="also write `evocl report` of def-nsga2 into OUT/report-def-nsga2")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    space_path = space_file(args.work)
    runs = {j.stem: make_run(j, args.work / "runs", space_path)
            for j in sorted(args.journals.glob("*.jsonl")) if "joint" not in j.stem}
    result = {"source": str(args.journals), "space": f"cl_lora.yaml at {RUNS_COMMIT}"
              if space_path.parent == args.work else "search_spaces/cl_lora.yaml", "groups": {}}
    import numpy as np

    from evocl.evolution import pareto

    for group, names in GROUPS.items():
        dirs = [runs[n] for n in names if n in runs]
        if len(dirs) < 2:
            continue
        page = write_compare(dirs, args.out / group)
        print(f"wrote {page}")
        views = [read_run(d) for d in dirs]
        pts = [f for v in views for _, _, f, _ in pareto.scored(v.evaluations, v.space)]
        ref = reference_point(np.array(pts), list(views[0].space.objectives))
        result["groups"][group] = {"page": str(page.relative_to(ROOT)) if page.is_relative_to(ROOT)
                                   else str(page), "reference_point_min": list(map(float, ref)),
                                   "runs": [summarise(d, ref) for d in dirs]}
    if args.with_report:
        page = write_report(runs["def-nsga2"], args.out / "report-def-nsga2")
        print(f"wrote {page}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
