"""Packed vs alone over many varied candidates (issue 20, "same measurements"): each candidate's
ACC and forgetting trained in packs of K (`evocl.cl.pack.run_pack`) and alone (`evaluate`), on
the tiny BERT (keyword stream) and a tiny Llama (memorization tensors). Candidates vary rank,
alpha, dropout 0 (masks differ by design, docs/packing.md), targets, layers, rank schedule, lr,
steps, batch size, warm-up, weight decay and every strategy (MER runs solo: counted).

    PYTHONPATH=. nice -n 10 .venv/bin/python experiments/packing/check_pack_equivalence.py --n 30 --k 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

STRATEGIES = ({}, {"replay": True}, {"ewc": True}, {"distill": True}, {"agem": True},
              {"adversarial": True}, {"mer": True}, {"replay": True, "ewc": True, "distill": True})


def configs(n: int, seed: int, lm: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append({"lora_rank": int(rng.choice([1, 2, 4, 8, 16])),
                    "lora_alpha_ratio": float(rng.choice([0.5, 1.0, 2.0])),
                    "lora_dropout": 0.0,
                    "lora_targets": str(rng.choice(["attention", "attention_mlp", "all_linear"])),
                    "lora_layers": str(rng.choice(["all", "top_half", "bottom_half"])),
                    "lora_rank_schedule": str(rng.choice(["uniform", "increasing", "decreasing"])),
                    "lr": float(rng.choice([3e-3, 1e-2, 3e-2])),
                    "steps_per_task": int(rng.choice([4, 8, 12])),
                    "batch_size": int(rng.choice([4, 8, 12])),
                    "warmup_ratio": float(rng.choice([0.0, 0.2])),
                    "weight_decay": float(rng.choice([0.0, 0.01])),
                    **STRATEGIES[i % len(STRATEGIES)]})
    return out


def compare(backbone, data, cfgs, k: int) -> list[dict]:
    from evocl.cl import evaluate
    from evocl.cl.pack import run_pack
    from evocl.records import Candidate

    cands = [Candidate(i, c, f"h{i}", seed=1000 + i) for i, c in enumerate(cfgs)]
    t0 = time.perf_counter()
    packed = run_pack(backbone, data, cands, k, device="cpu")
    t_pack = time.perf_counter() - t0
    rows = []
    t0 = time.perf_counter()
    for c in cands:
        solo = evaluate(c.config, data, backbone, c.seed, device="cpu")
        p = packed[c.id]
        rows.append({"id": c.id, "config": c.config, "status": [solo.status, p.status],
                     "packed": p.metrics.get("pack", {}).get("packed"),
                     "acc": [solo.objectives.get("acc"), p.objectives.get("acc")],
                     "forgetting": [solo.objectives.get("forgetting"),
                                    p.objectives.get("forgetting")],
                     "matrix_equal": solo.metrics.get("accuracy_matrix")
                     == p.metrics.get("accuracy_matrix")})
    t_solo = time.perf_counter() - t0
    return rows, t_pack, t_solo


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == ["ok", "ok"]]
    d_acc = [abs(r["acc"][0] - r["acc"][1]) for r in ok]
    d_f = [abs(r["forgetting"][0] - r["forgetting"][1]) for r in ok]
    return {"candidates": len(rows), "both_ok": len(ok),
            "packed": sum(bool(r["packed"]) for r in rows),
            "solo_fallback": sum(r["packed"] is False for r in rows),
            "status_differs": sum(r["status"][0] != r["status"][1] for r in rows),
            "acc_abs_diff_max": max(d_acc, default=None),
            "acc_abs_diff_median": statistics.median(d_acc) if d_acc else None,
            "forgetting_abs_diff_max": max(d_f, default=None),
            "forgetting_abs_diff_median": statistics.median(d_f) if d_f else None,
            "accuracy_matrices_equal": sum(r["matrix_equal"] for r in ok)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from evocl.cl import load_backbone
    from evocl.cl.evaluation import prepare
    from evocl.cl.testing import keyword_stream, memorize_lm_tensors, tiny_llama

    tiny = load_backbone("tiny")
    doc = {"benchmark": "pack_equivalence", "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "PYTHONPATH=. nice -n 10 .venv/bin/python "
                      "experiments/packing/check_pack_equivalence.py " + " ".join(sys.argv[1:]),
           "k": args.k, "torch_threads": 1, "learners": {}}
    for name, backbone, data, lm in (
            ("encoder (tiny BERT, keyword stream)", tiny,
             prepare(keyword_stream(n_tasks=3), tiny), False),
            ("causal_lm (tiny Llama, memorization)", tiny_llama(), memorize_lm_tensors(), True)):
        rows, t_pack, t_solo = compare(backbone, data, configs(args.n, 7, lm), args.k)
        s = summary(rows)
        s.update(pack_wall_s=round(t_pack, 2), solo_wall_s=round(t_solo, 2))
        print(name, json.dumps(s), flush=True)
        doc["learners"][name] = {"summary": s, "rows": rows}
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "results", "pack_equivalence.json")
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(out + ".tmp", out)
    print("wrote", out)


if __name__ == "__main__":
    main()
