"""SmolLM2-135M-Instruct on the built-in `chat` stream: sequential fine-tuning vs replay vs EWC
vs token-level distillation (LwF) vs all three, and joint training on all tasks at once (the
upper bound), through evocl's own evaluator.

R[i][j] is the teacher-forced next-token accuracy on task j's held-out responses after task i;
ACC, forgetting and BWT are read from it as for classifiers; perplexity is the mean over tasks
of the final per-task perplexity. Joint training runs the same total number of steps
(steps_per_task x tasks) on one task holding every task's training rows, then scores each task
with the same learner (its ACC is the mean of the per-task accuracies; forgetting is 0 by
construction). Every finished row is written at once, so a stopped run keeps its rows; a rerun
skips rows already in the output.

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/language_models/bench_lm_strategies.py [--seeds 0] \
        [--threads 2] [--out experiments/language_models/results/lm_strategies.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

BASE = {"lr": 3e-3, "steps_per_task": 12, "batch_size": 8, "lora_rank": 8,
        "lora_targets": "attention", "lora_layers": "all", "lora_dropout": 0.0}
STRATEGIES = {
    "sequential": {},
    "replay": {"replay": True, "replay_buffer_per_class": 16, "replay_ratio": 0.25},
    "ewc": {"ewc": True, "ewc_lambda": 1e3, "ewc_gamma": 1.0},
    "lwf (token KD)": {"distill": True, "distill_alpha": 0.5, "distill_temperature": 2.0},
    "replay + ewc + lwf": {"replay": True, "replay_buffer_per_class": 16, "replay_ratio": 0.25,
                           "ewc": True, "ewc_lambda": 1e3, "distill": True,
                           "distill_alpha": 0.5, "distill_temperature": 2.0},
    "joint (upper bound)": {},
}
OPTIONS = {"max_length": 64, "max_eval_per_task": 16, "max_test_per_task": 16}


def joint_tensors(data):
    """One task holding every task's training rows (validation and test as the stream's)."""
    from dataclasses import replace

    train = replace(data.train, task=data.train.task * 0,
                    offsets=(0, data.train.offsets[-1]))
    return replace(data, train=train, task_classes=((),), val=data.val, test=data.test,
                   fingerprint=data.fingerprint + "-joint")


def run_joint(cfg: dict, data, backbone, seed: int) -> dict:
    """Joint training for steps_per_task x tasks steps; per-task scores on the real stream."""
    import math

    from evocl.cl import evaluate
    from evocl.cl.learners.causal_lm import CausalLMLearner
    from evocl.cl.names import Options

    scores = {}

    def score(model) -> None:
        learner = CausalLMLearner(model, data, data.n_tasks, model_device(model), None,
                                  Options(**OPTIONS))
        acc, extra = learner.eval_round("val", data.n_tasks - 1)
        scores["acc_per_task"], scores["nll_per_task"] = acc, extra["nll"]

    joint = joint_tensors(data)
    r = evaluate({**cfg, "steps_per_task": cfg["steps_per_task"] * data.n_tasks}, joint,
                 backbone, seed, device="cpu", on_trained=score)
    assert r.ok, r.error
    acc = scores["acc_per_task"]
    return {"objectives": {"acc": sum(acc) / len(acc), "forgetting": 0.0, "bwt": 0.0,
                           "perplexity": sum(math.exp(v) for v in scores["nll_per_task"]) / len(acc)},
            "acc_per_task": acc, "nll_per_task": scores["nll_per_task"],
            "timings": r.metrics["timings"], "wall_time": r.wall_time,
            "steps": cfg["steps_per_task"] * data.n_tasks}


def model_device(model):
    return next(model.parameters()).device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="strategy names to run")
    ap.add_argument("--backbone", default="smollm2")
    ap.add_argument("--steps", type=int, default=BASE["steps_per_task"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "lm_strategies.json"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from common import write_json

    import torch

    torch.set_num_threads(args.threads)
    from evocl.cl import evaluate, load_backbone, prepare
    from evocl.streams import load_stream

    t0 = time.perf_counter()
    backbone = load_backbone(args.backbone)
    data = prepare(load_stream("chat", seed=0), backbone, OPTIONS["max_length"],
                   OPTIONS["max_eval_per_task"], OPTIONS["max_test_per_task"])
    load_s = time.perf_counter() - t0
    doc = {"rows": []}
    if os.path.exists(args.out):
        doc = json.load(open(args.out))
    done = {(r["strategy"], r["seed"]) for r in doc["rows"]}
    for seed in args.seeds:
        for name, extra in STRATEGIES.items():
            if (name, seed) in done or (args.only and name not in args.only):
                continue
            cfg = {**BASE, "steps_per_task": args.steps, **extra}
            if name.startswith("joint"):
                row = run_joint(cfg, data, backbone, seed)
            else:
                r = evaluate(cfg, data, backbone, seed, device="cpu")
                assert r.ok, r.error
                row = {"objectives": r.objectives, "accuracy_matrix": r.metrics["accuracy_matrix"],
                       "nll_matrix": r.metrics["matrices"]["val_nll"],
                       "timings": r.metrics["timings"], "wall_time": r.wall_time,
                       "steps": cfg["steps_per_task"] * data.n_tasks}
            row.update(strategy=name, seed=seed, config=cfg,
                       s_per_step=row["timings"]["train"] / row["steps"],
                       loadavg=os.getloadavg())
            doc["rows"].append(row)
            o = row["objectives"]
            print(f"{name:22s} seed {seed}  ACC {o['acc']:.3f}  forgetting {o['forgetting']:.3f}  "
                  f"perplexity {o['perplexity']:.2f}  {row['s_per_step']:.2f} s/step  "
                  f"wall {row['wall_time']:.0f}s  load {os.getloadavg()[0]:.1f}", flush=True)
            doc.update({"benchmark": "lm_strategies", "date": time.strftime("%Y-%m-%d"),
                        "command": "PYTHONPATH=. nice -n 10 .venv/bin/python " + " ".join(sys.argv),
                        "backbone": args.backbone, "stream": "chat", "options": OPTIONS,
                        "base_config": BASE, "backbone_load_s": load_s,
                        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads,
                                    "platform": platform.platform()}})
            write_json(args.out, doc)


if __name__ == "__main__":
    main()
