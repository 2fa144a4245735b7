"""A user's multi-turn chat stream end to end on tiny-lm: its messages / ShareGPT JSONL with
exact_match and rougeL tasks and its own retention set, searched under a space with a
`retention_drop` constraint, exported, trained and reported."""

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_end_to_end_lm import ROOT, env, evocl  # noqa: E402,F401  (one CLI runner, one env)

SPEC = ROOT / "tests" / "data" / "chat" / "chat.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, env):
    tmp = tmp_path_factory.mktemp("chat")
    space = yaml.safe_load((ROOT / "search_spaces" / "cl_lm.yaml").read_text())
    space["name"] = "cl_chat_constrained"
    space["objectives"] = {"acc": {"direction": "maximize"},
                           "forgetting": {"direction": "minimize"}}
    space["constraints"] = {"retention_drop": {"max": 0.5}}
    space["parameters"]["steps_per_task"] = {"type": "int", "low": 2, "high": 4, "default": 2}
    (tmp / "space.yaml").write_text(yaml.safe_dump(space))
    d = tmp / "run"
    res = evocl("search", "--stream", str(SPEC), "--backbone", "tiny-lm", "--space",
                str(tmp / "space.yaml"), "--budget", "3", "--population", "3", "--seed", "1",
                "--run-dir", str(d), "--quiet", "-o", "max_length=64", "-o", "max_new_tokens=8",
                env=env)
    assert res.returncode == 0, res.stderr
    return d


def test_the_result_carries_the_matrix_its_metrics_and_retention(run_dir):
    from evocl.storage import read_run

    view = read_run(run_dir)
    assert [c.name for c in view.space.constraints] == ["retention_drop"]
    assert len(view.evaluations) == 3
    for _, r in view.evaluations:
        assert r.ok, r.error
        m = r.metrics
        assert len(m["accuracy_matrix"]) == 3
        assert m["task_metrics"] == ["exact_match", "rougeL", "rougeL"] and m["metric"] == "mixed"
        assert m["retention"]["set"] == "general" and len(m["retention"]["scores"]) == 4
        assert {"retention", "retention_drop"} <= set(r.objectives)


def test_it_exports_trains_and_reports(run_dir, tmp_path, env):
    out = tmp_path / "knee.yaml"
    assert evocl("export", str(run_dir), "--format", "yaml", "--out", str(out),
                 env=env).returncode == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["metrics"]["metric"] == "mixed" and "retention_drop" in doc["objectives"]
    assert evocl("export", str(run_dir), "--format", "peft", "--out", str(tmp_path / "peft"),
                 env=env).returncode == 0
    res = evocl("train", "--config", str(out), "--out", str(tmp_path / "trained"), env=env)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "trained" / "metrics.json").read_text())
    assert metrics["metrics"]["retention"]["set"] == "general"
    samples = json.loads((tmp_path / "trained" / "samples.json").read_text())
    assert any(s["task"] == "retention" and "final" in s for s in samples)
    assert any(isinstance(s["prompt"], list) for s in samples)  # a conversation's history
    rep = evocl("report", str(run_dir), "--out", str(tmp_path / "report"), env=env)
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert "retention.png" in page and "Score (exact_match, rougeL, rougeL) matrix" in page


def test_a_retention_objective_without_a_retention_set_is_refused(tmp_path, env):
    res = evocl("search", "--stream", str(SPEC), "--backbone", "tiny-lm", "--retention", "none",
                "--budget", "1", "--run-dir", str(tmp_path / "run"), "--quiet", env=env)
    assert res.returncode == 2 and not (tmp_path / "run").exists()
    assert "objectives.retention_drop: the stream has no retention set" in res.stderr
