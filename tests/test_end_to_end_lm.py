"""A causal LM end to end through the CLI: tiny-lm (random 2-layer Llama, SmolLM2's tokenizer
and chat template) on the built-in `chat` stream, with the default causal-LM space (cl_lm.yaml):
search, kill -9, resume, export in every format (the PEFT config applied to the model), train
(the adapter loaded with PeftModel.from_pretrained, samples), report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_end_to_end import _tells  # noqa: E402  (one reader of the journal's tells)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

POP, GENS = 4, 2
OPTS = ["-o", "max_length=32", "-o", "max_eval_per_task=6", "-o", "max_test_per_task=6"]


def evocl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "evocl.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=900, env=env)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # one torch thread per subprocess: tiny models gain nothing from two, and lose much on a
    # loaded machine
    return {**os.environ, "EVOCL_CACHE": str(tmp_path_factory.mktemp("cache")),
            "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, env):
    d = tmp_path_factory.mktemp("e2e-lm") / "run"
    cmd = [sys.executable, "-m", "evocl.cli", "search", "--stream", "chat", "--backbone", "tiny-lm",
           "--population", str(POP), "--generations", str(GENS), "--seed", "5",
           "--fitness-tasks", "2", "--run-dir", str(d), "--quiet", *OPTS]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(_tells(d)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "search ended before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(_tells(d)) < POP * GENS
    res = evocl("resume", str(d), "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    return d


def test_search_uses_the_lm_space_and_resumes_exactly_once(run_dir):
    assert sorted(_tells(run_dir)) == list(range(POP * GENS))
    from evocl.storage import read_run

    view = read_run(run_dir)
    assert view.space.name == "cl_lm" and not view.pending
    base_c, base_r = view.evaluations[0]
    assert base_c.id == 0 and base_c.config["replay"] is False  # sequential fine-tuning first
    assert base_r.ok, base_r.error
    assert base_r.metrics["scenario"] == "generative" and "perplexity" in base_r.objectives
    assert "retention_drop" in base_r.objectives  # the default retention set: BBC headlines
    assert base_r.metrics["retention"]["set"] == "bbc-headlines"
    assert len(base_r.metrics["accuracy_matrix"]) == 2
    assert all(r.ok for _, r in view.evaluations), [r.error for _, r in view.evaluations]


def test_exports_apply_to_the_causal_lm(run_dir, tmp_path, env):
    for fmt in ("yaml", "json", "peft", "hf", "avalanche", "optuna"):
        out = tmp_path / {"yaml": "knee.yaml", "json": "knee.json", "optuna": "study.db"}.get(fmt, fmt)
        res = evocl("export", str(run_dir), "--select", "knee", "--format", fmt, "--out", str(out),
                    env=env)
        assert res.returncode == 0, (fmt, res.stderr)
    doc = yaml.safe_load((tmp_path / "knee.yaml").read_text())
    assert doc["provenance"]["backbone"] == "tiny-lm"

    import peft

    from evocl.cl import load_backbone

    base = load_backbone("tiny-lm").model
    config = peft.LoraConfig.from_pretrained(str(tmp_path / "peft"))
    assert config.task_type == "CAUSAL_LM" and config.r == doc["config"]["lora_rank"]
    model = peft.get_peft_model(base, config)
    assert any(".lora_A." in n for n, _ in model.named_parameters())
    assert "q_proj" in config.target_modules and "o_proj" in config.target_modules

    from transformers import TrainingArguments

    args = json.loads((tmp_path / "hf" / "training_args.json").read_text())
    assert TrainingArguments(**{**args, "output_dir": str(tmp_path / "o")}).max_steps \
        == doc["config"]["steps_per_task"]
    spec = json.loads((tmp_path / "avalanche" / "avalanche_strategy.json").read_text())
    assert spec["notes"][0].startswith("generative stream")

    import optuna

    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == POP * GENS


def test_train_saves_a_peft_adapter_samples_and_metrics(run_dir, tmp_path, env):
    assert evocl("export", str(run_dir), "--format", "yaml", "--out", str(tmp_path / "k.yaml"),
                 env=env).returncode == 0
    out = tmp_path / "trained"
    res = evocl("train", "--config", str(tmp_path / "k.yaml"), "--out", str(out), env=env)
    assert res.returncode == 0, res.stderr
    assert "perplexity" in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["metrics"]["accuracy_matrix"]) == 4  # the whole chat stream
    assert metrics["objectives"]["perplexity"] > 1.0
    samples = json.loads((out / "samples.json").read_text())
    assert {s["task"] for s in samples} == {0, 1, 2, 3, "retention"}
    for s in samples:
        assert s["prompt"] and s["reference"]
        keys = ("before", "final") if s["task"] == "retention" else \
            ("before", "after_own_task", "final")
        assert all(isinstance(s[k], str) for k in keys)

    import torch
    from peft import PeftModel

    from evocl.cl import load_backbone

    bk = load_backbone("tiny-lm")
    model = PeftModel.from_pretrained(bk.model, str(out / "adapter"))
    ids = torch.tensor([bk.tokenizer("Hello")["input_ids"]])
    gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                         do_sample=False, pad_token_id=bk.tokenizer.pad_token_id)
    assert gen.shape[1] == ids.shape[1] + 4

    rep = evocl("report", str(run_dir), "--out", str(tmp_path / "report"), env=env)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "report" / "index.html").exists()
