"""The preference end-to-end on SmolLM2-135M-Instruct: the feedback JSONL of
tests/data/preference (two supervised tasks, then one preference task) through `evocl search`
(2 evaluations), `export --format trl` (loaded in TRL) and `train`; records R (the preference
task's accuracy in its last column), the DPO task's scores and the wall times.

    PYTHONPATH=. nice -n 10 env OMP_NUM_THREADS=2 \\
        .venv/bin/python experiments/language_models/bench_preference_smollm2.py \\
        [--out experiments/language_models/results/preference_smollm2.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "data" / "preference" / "feedback.yaml"


def evocl(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "evocl.cli", *args], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return res, round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "experiments/language_models/results/preference_smollm2.json"))
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    out: dict = {"command": " ".join(sys.argv), "stream": str(SPEC.relative_to(ROOT))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        import yaml

        space = yaml.safe_load((ROOT / "search_spaces" / "cl_lm.yaml").read_text())
        space["parameters"]["steps_per_task"] = {"type": "categorical", "choices": [a.steps],
                                                 "default": a.steps}
        space["parameters"]["batch_size"] = {"type": "categorical", "choices": [4], "default": 4}
        space["objectives"] = {"acc": {"direction": "maximize"},
                               "forgetting": {"direction": "minimize"}}
        (tmp_p / "space.yaml").write_text(yaml.safe_dump(space))
        run = tmp_p / "run"
        res, out["search_s"] = evocl("search", "--stream", str(SPEC), "--backbone", "smollm2",
                                     "--space", str(tmp_p / "space.yaml"), "--budget", "2",
                                     "--population", "2", "--seed", "0", "--run-dir", str(run),
                                     "--quiet", "-o", "max_length=64")
        out["search_rc"] = res.returncode
        if res.returncode:
            out["search_stderr"] = res.stderr[-2000:]
        else:
            from evocl.storage import read_run

            view = read_run(run)
            out["evaluations"] = [{"config": {k: c.config.get(k) for k in (
                "dpo_beta", "lr", "replay", "ewc", "distill", "agem", "mer")},
                "status": r.status, "task_metrics": r.metrics.get("task_metrics"),
                "R": r.metrics.get("accuracy_matrix"), "acc": r.objectives.get("acc"),
                "forgetting": r.objectives.get("forgetting")} for c, r in view.evaluations]
            knee = tmp_p / "knee.yaml"
            res, _ = evocl("export", str(run), "--format", "yaml", "--out", str(knee))
            res, out["export_trl_s"] = evocl("export", str(run), "--format", "trl", "--out",
                                             str(tmp_p / "trl"))
            out["export_trl_rc"] = res.returncode
            if res.returncode == 0:
                import trl

                cpu = {"use_cpu": True, "output_dir": str(tmp_p / "o")}
                trl.DPOConfig(**{**json.loads((tmp_p / "trl/dpo_config.json").read_text()), **cpu})
                trl.SFTConfig(**{**json.loads((tmp_p / "trl/sft_config.json").read_text()), **cpu})
                out["trl_configs_load"] = True
            res, out["train_s"] = evocl("train", "--config", str(knee), "--out",
                                        str(tmp_p / "trained"))
            out["train_rc"] = res.returncode
            if res.returncode == 0:
                m = json.loads((tmp_p / "trained/metrics.json").read_text())
                out["train_R"] = m["metrics"].get("accuracy_matrix")
                samples = json.loads((tmp_p / "trained/samples.json").read_text())
                out["preference_samples"] = [
                    {k: s.get(k) for k in ("prompt", "reference", "rejected", "before", "final")}
                    for s in samples if "rejected" in s][:3]
            else:
                out["train_stderr"] = res.stderr[-2000:]
    sys.path.insert(0, str(ROOT / "experiments"))
    from common import write_json

    write_json(a.out, out)  # with the command, the git commit and the machine
    print(json.dumps({k: v for k, v in out.items() if k != "preference_samples"}, indent=1))


if __name__ == "__main__":
    main()
