"""``evocl search --pack K`` end to end on the tiny model (CLI): killed with SIGKILL and resumed,
it ends with the results of the uninterrupted packed run (same candidates by id; objectives
within REL: a resumed pack holds other mates, so float sums may be ordered differently);
``--early-stop asha`` prunes packed candidates."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
REL = 1e-4
ARGS = ["--space", "tiny", "--stream", "synthetic", "--backbone", "tiny", "--population", "4",
        "--generations", "2", "--seed", "3", "--quiet", "-o", "max_eval_per_task=16",
        "--pack", "3"]


def _events(run_dir: Path, kind: str) -> list[dict]:
    out = []
    path = run_dir / "journal.jsonl"
    for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
        try:
            e = json.loads(line)
        except json.JSONDecodeError:  # a torn last line after kill
            continue
        if e.get("event") == kind:
            out.append(e)
    return out


def _search(run_dir: Path, env: dict, *more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evocl.cli", "search", *ARGS, *more,
                             "--run-dir", str(run_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _results(run_dir: Path) -> dict[int, dict]:
    from evocl.storage import read_run

    view = read_run(run_dir)
    assert not view.pending
    return {c.id: (c.config, r) for c, r in view.evaluations}


def test_kill_and_resume_a_packed_search(tmp_path):
    env = {**os.environ, "EVOCL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    proc = _search(whole, env)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    cut = tmp_path / "cut"
    proc = _search(cut, env)
    deadline = time.monotonic() + 300
    while len(_events(cut, "tell")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(_events(cut, "tell")) < 8
    res = subprocess.run([sys.executable, "-m", "evocl.cli", "resume", str(cut), "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    a, b = _results(whole), _results(cut)
    assert sorted(a) == sorted(b) == list(range(8))
    for cid in a:
        (ca, ra), (cb, rb) = a[cid], b[cid]
        assert ca == cb and ra.status == rb.status
        assert ra.metrics["pack"]["packed"] and rb.metrics["pack"]["packed"]
        assert ra.metrics["accuracy_matrix"] == rb.metrics["accuracy_matrix"], cid
        for k, v in ra.objectives.items():
            if k not in ("wall_time", "peak_memory_mb"):
                assert math.isclose(v, rb.objectives[k], rel_tol=REL, abs_tol=1e-7), (cid, k)


def test_packed_search_with_asha(tmp_path):
    env = {**os.environ, "EVOCL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "asha"
    proc = _search(run, env, "--early-stop", "asha")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    tells = _events(run, "tell")
    assert len(tells) == 8
    assert {t["result"]["status"] for t in tells} <= {"ok", "pruned"}
    assert any(t["result"]["status"] == "pruned" for t in tells)
    assert all(t["result"]["metrics"]["pack"]["packed"] for t in tells)


def test_packed_search_on_ray_actors(tmp_path):
    """Two Ray actors, two candidates packed in each: every result as the candidate alone."""
    # RAY_ADDRESS=local: a Ray of its own even where another process runs a cluster here
    env = {**os.environ, "EVOCL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "RAY_ADDRESS": "local"}
    run = tmp_path / "ray"
    args = ["--space", "tiny", "--stream", "synthetic", "--backbone", "tiny", "--population",
            "4", "--generations", "1", "--seed", "3", "--quiet", "-o", "max_eval_per_task=16",
            "--pack", "2", "--workers", "2", "--executor", "ray"]
    proc = subprocess.Popen([sys.executable, "-m", "evocl.cli", "search", *args, "--run-dir",
                             str(run)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    got = _results(run)
    assert sorted(got) == [0, 1, 2, 3]
    from evocl.cl import CLEvaluator
    from evocl.records import Candidate

    ev = CLEvaluator(stream="synthetic", backbone="tiny", device="cpu", max_eval_per_task=16)
    for cid, (config, res) in got.items():
        assert res.ok and res.metrics["pack"]["packed"], res.error
        solo = ev(Candidate(cid, config, "h", seed=res.metrics["seed"]))
        assert solo.metrics["accuracy_matrix"] == res.metrics["accuracy_matrix"], cid


def test_pack_with_the_low_fidelity_pass_is_refused_before_a_run_exists(tmp_path, capsys):
    from evocl.cli import main

    code = main(["search", "--run-dir", str(tmp_path / "run"), "--space", "tiny", "--stream",
                 "synthetic", "--backbone", "tiny", "--pack", "2", "--early-stop", "asha",
                 "--early-stop-option", "low_fidelity=0.25", "--quiet"])
    assert code == 2
    assert "--pack" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
