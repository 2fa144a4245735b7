"""A small real search on SmolLM2-135M-Instruct and the `chat` stream, then the checks of the
language-model issue on its outcome:

1. the search itself (run separately, its command is recorded in the JSON):

       PYTHONPATH=. .venv/bin/evocl search --run-dir RUN --backbone smollm2 --stream chat \\
           --budget 4 --workers 1 --population 4 --cpus-per-eval 2 --seed 0 \\
           -o max_length=64 -o max_eval_per_task=16 -o max_test_per_task=16

2. this script, on that run directory:
   - every evaluation's ACC, forgetting, BWT and perplexity; candidate 0 is sequential
     fine-tuning (the space's defaults), so the knee's forgetting is compared with it;
   - `evocl export --select knee --format peft`, then `peft.LoraConfig.from_pretrained` and
     `get_peft_model` on SmolLM2 (the adapter layout applies to the real model);
   - `evocl train --config <knee yaml>` on SmolLM2 (unless --no-train; --train-steps N trains
     the knee's configuration with N steps per task, to spare machine time), then
     `PeftModel.from_pretrained(SmolLM2, adapter)` and a greedy generation;
   - a user's own prompt/response JSONL through the README's stream spec
     (`scenario: generative`), searched for 2 evaluations on `tiny-lm`.

    PYTHONPATH=. nice -n 5 .venv/bin/python experiments/language_models/lm_search_smollm2.py RUN \\
        [--out experiments/language_models/results/lm_search_smollm2.json]
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def evocl(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "evocl.cli", *args], capture_output=True,
                          text=True, env=env, **kw)


def evaluations(run_dir: Path) -> list[dict]:
    from evocl.export.select import knee
    from evocl.storage import read_run

    view = read_run(run_dir)
    front_ids = {c.id for c, _ in view.pareto_front()}
    knee_id = knee(list(view.pareto_front()), list(view.space.objectives))[0].id
    rows = []
    for c, r in sorted(view.evaluations, key=lambda e: e[0].id):
        m = r.metrics or {}
        rows.append({"id": c.id, "status": r.status, "config": c.config,
                     "objectives": r.objectives, "accuracy_matrix": m.get("accuracy_matrix"),
                     "test_acc": m.get("test_acc"), "timings": m.get("timings"),
                     "on_front": c.id in front_ids, "knee": c.id == knee_id,
                     "error": r.error})
    return rows


def check_peft_export(run_dir: Path, work: Path, backbone: str) -> dict:
    import peft

    from evocl.cl import load_backbone

    out = work / "knee-peft"
    res = evocl("export", str(run_dir), "--select", "knee", "--format", "peft", "--out", str(out))
    if res.returncode != 0:
        return {"ok": False, "error": res.stderr.strip()}
    config = peft.LoraConfig.from_pretrained(str(out))
    bk = load_backbone(backbone)
    model = peft.get_peft_model(bk.model, config)
    n_lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return {"ok": n_lora > 0, "task_type": str(config.task_type), "r": config.r,
            "target_modules": sorted(config.target_modules), "lora_parameters": n_lora}


def check_train(run_dir: Path, work: Path, steps: int | None, backbone: str) -> dict:
    import torch
    import yaml
    from peft import PeftModel

    from evocl.cl import load_backbone
    from evocl.streams import encode_prompt

    cfg = work / "knee.yaml"
    res = evocl("export", str(run_dir), "--select", "knee", "--format", "yaml", "--out", str(cfg))
    if res.returncode != 0:
        return {"ok": False, "error": res.stderr.strip()}
    if steps is not None:  # the knee's configuration with fewer steps per task (machine time)
        doc = yaml.safe_load(cfg.read_text())
        doc["config"]["steps_per_task"] = steps
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = work / "trained"
    t0 = time.perf_counter()
    res = evocl("train", "--config", str(cfg), "--out", str(out))
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"ok": False, "error": res.stderr.strip()[-2000:]}
    metrics = json.loads((out / "metrics.json").read_text())
    samples = json.loads((out / "samples.json").read_text())
    bk = load_backbone(backbone)
    model = PeftModel.from_pretrained(bk.model, str(out / "adapter"))
    tok = bk.tokenizer
    prompt = samples[0]["prompt"]
    ids = torch.tensor([encode_prompt(tok, prompt)])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=24, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
    answer = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    return {"ok": True, "steps_per_task": steps or "the knee's", "train_wall_s": round(wall, 1),
            "objectives": metrics.get("objectives"),
            "samples": samples[:4], "reloaded_prompt": prompt, "reloaded_answer": answer}


def check_user_jsonl(work: Path) -> dict:
    data = work / "mine"
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(24):
        rows.append({"task": "greetings", "prompt": f"Say hello to person {i}.",
                     "response": f"Hello, person {i}! Nice to meet you."})
        rows.append({"task": "arithmetic", "prompt": f"What is {i} plus {i}?",
                     "response": f"{i} plus {i} is {2 * i}."})
    (data / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "stream.yaml").write_text(
        "name: mine\nscenario: generative\nsource: {format: jsonl, path: chat.jsonl}\n"
        "tasks: [greetings, arithmetic]\nsplits: {val: 0.2, test: 0.2}\n")
    run = work / "mine-run"
    res = evocl("search", "--run-dir", str(run), "--backbone", "tiny-lm", "--stream",
                str(data / "stream.yaml"), "--budget", "2", "--population", "2", "--quiet",
                "-o", "max_length=32")
    view_rows = evaluations(run) if res.returncode == 0 else []
    return {"ok": res.returncode == 0 and all(r["status"] == "ok" for r in view_rows),
            "returncode": res.returncode, "stderr_tail": res.stderr.strip()[-500:],
            "evaluations": [{"id": r["id"], "status": r["status"], "objectives": r["objectives"]}
                            for r in view_rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "lm_search_smollm2.json")
    ap.add_argument("--backbone", default="smollm2", help="the run's backbone (tiny-lm to try)")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="steps per task for `evocl train` of the knee (default: the knee's)")
    ap.add_argument("--search-command", default="", help="recorded as given")
    ap.add_argument("--search-wall", type=float, default=None, help="recorded as given (s)")
    args = ap.parse_args()

    rows = evaluations(args.run_dir)
    seq = next(r for r in rows if r["id"] == 0)
    kn = next(r for r in rows if r["knee"])
    doc = {"benchmark": "lm_search_smollm2", "date": time.strftime("%Y-%m-%d"),
           "search_command": args.search_command, "search_wall_s": args.search_wall,
           "machine": {"cpus": os.cpu_count(), "load_at_end": os.getloadavg()},
           "evaluations": rows,
           "knee_vs_sequential": {
               "knee_id": kn["id"],
               "sequential_forgetting": seq["objectives"].get("forgetting"),
               "knee_forgetting": kn["objectives"].get("forgetting"),
               "sequential_acc": seq["objectives"].get("acc"),
               "knee_acc": kn["objectives"].get("acc")}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        doc["peft_export_on_smollm2"] = check_peft_export(args.run_dir, work, args.backbone)
        if not args.no_train:
            doc["train_adapter_on_smollm2"] = check_train(args.run_dir, work, args.train_steps, args.backbone)
        doc["user_jsonl_spec"] = check_user_jsonl(work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp_out, args.out)
    print(json.dumps(doc["knee_vs_sequential"], indent=1))


if __name__ == "__main__":
    main()
