"""The main job end to end on the tiny model and search_spaces/tiny.yaml, through the CLI:
search, kill -9, resume, export in every format (each read back by its library), train, report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

POP, GENS = 4, 2


def evocl(*args, **kw):
    return subprocess.run([sys.executable, "-m", "evocl.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, **kw)


def _tells(run_dir: Path) -> list[int]:
    ids = []
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return ids
    for line in path.read_text(errors="replace").splitlines():  # a torn last line after kill
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if e.get("event") == "tell":
            ids.append(e["id"])
    return ids


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e") / "run"
    env = {**os.environ, "EVOCL_CACHE": str(d.parent / "cache")}
    cmd = [sys.executable, "-m", "evocl.cli", "search", "--space", "tiny", "--stream", "synthetic",
           "--backbone", "tiny", "--population", str(POP), "--generations", str(GENS), "--seed", "3",
           "--run-dir", str(d), "--quiet", "-o", "max_eval_per_task=32"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(_tells(d)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "search ended before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    told_before = _tells(d)
    assert 2 <= len(told_before) < POP * GENS
    res = subprocess.run([sys.executable, "-m", "evocl.cli", "resume", str(d), "--quiet"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return d


def test_resume_completes_the_run_without_re_evaluating(run_dir):
    told = _tells(run_dir)
    assert sorted(told) == list(range(POP * GENS)), told  # every candidate told exactly once
    from evocl.storage import read_run

    view = read_run(run_dir)
    assert not view.pending
    base = view.evaluations[0]
    assert base[0].id == 0 and base[0].config["replay"] is False and base[0].config["ewc"] is False
    assert view.pareto_front()


def test_export_every_format_is_read_back(run_dir, tmp_path):
    for fmt in ("yaml", "json", "peft", "hf", "avalanche", "optuna"):
        out = tmp_path / {"yaml": "knee.yaml", "json": "knee.json", "optuna": "study.db"}.get(fmt, fmt)
        res = evocl("export", str(run_dir), "--select", "knee", "--format", fmt, "--out", str(out))
        assert res.returncode == 0, (fmt, res.stderr)
    doc = yaml.safe_load((tmp_path / "knee.yaml").read_text())
    assert doc["config"] == json.loads((tmp_path / "knee.json").read_text())["config"]
    assert doc["provenance"]["backbone"] == "tiny" and doc["provenance"]["stream"] == "synthetic"

    import peft

    lora = peft.LoraConfig.from_pretrained(str(tmp_path / "peft"))
    assert lora.r == doc["config"]["lora_rank"]

    from transformers import TrainingArguments

    args = json.loads((tmp_path / "hf" / "training_args.json").read_text())
    ta = TrainingArguments(**{**args, "output_dir": str(tmp_path / "hf-out")})
    assert ta.learning_rate == pytest.approx(doc["config"]["lr"])
    assert ta.max_steps == doc["config"]["steps_per_task"]

    spec = json.loads((tmp_path / "avalanche" / "avalanche_strategy.json").read_text())
    assert spec["strategy"]["class"] == "avalanche.training.Naive"
    plugins = {p["class"].rsplit(".", 1)[1] for p in spec["plugins"]}
    assert ("EWCPlugin" in plugins) == doc["config"]["ewc"]
    assert ("ReplayPlugin" in plugins) == doc["config"]["replay"]
    try:
        import avalanche.training.plugins as ap  # not installed by default
    except ImportError:
        pass
    else:
        for p in spec["plugins"]:
            getattr(ap, p["class"].rsplit(".", 1)[1])(**p["kwargs"])

    import optuna

    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == POP * GENS


def test_train_an_export_and_report(run_dir, tmp_path):
    assert evocl("export", str(run_dir), "--format", "yaml", "--out", str(tmp_path / "k.yaml")).returncode == 0
    res = evocl("train", "--config", str(tmp_path / "k.yaml"), "--out", str(tmp_path / "trained"))
    assert res.returncode == 0, res.stderr
    assert "test accuracy" in res.stdout
    from safetensors.torch import load_file

    head = load_file(str(tmp_path / "trained" / "head.safetensors"))
    assert head["weight"].shape[0] == 10  # synthetic stream: 10 classes
    adapter = load_file(str(tmp_path / "trained" / "adapter" / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in adapter)
    metrics = json.loads((tmp_path / "trained" / "metrics.json").read_text())
    assert len(metrics["metrics"]["accuracy_matrix"]) == 5
    assert 0.0 <= metrics["metrics"]["test_acc"]["mean"] <= 1.0
    # a second train into the same folder is refused, nothing overwritten
    again = evocl("train", "--config", str(tmp_path / "k.yaml"), "--out", str(tmp_path / "trained"))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1

    rep = evocl("report", str(run_dir), "--out", str(tmp_path / "report"))
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert "accuracy_matrix.png" in page and (tmp_path / "report" / "accuracy_matrix.png").exists()
