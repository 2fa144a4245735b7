"""A search on a real three-node Ray cluster on this machine (``ray.cluster_utils.Cluster``:
a head and two worker nodes, one CPU each, all on 127.0.0.1) that loses a node mid-search.

The node's workers and raylet are SIGKILLed while it evaluates a candidate: the search goes
on on the other nodes, the candidate that was running there is evaluated again (attempts 2),
nothing told is lost, and a node that joins afterwards takes the replacement actor. With one
worker per node and a generational engine, the told candidates equal an undisturbed run's.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import run_search
from evocl.storage import read_run

pytestmark = pytest.mark.slow

MB = 1024 * 1024
#: how fast the head notices a node that stopped answering (Ray's default: ~15 s)
FAST_NODE_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                   "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster():
    """Head + 2 nodes on 127.0.0.1. Ray turns a loopback address into the machine's outward
    one on Linux (``resolve_ip_for_localhost``) unless clusters are "not enabled": so they are
    not, here and in the processes the nodes start, and every address stays on loopback."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster
    if ray.is_initialized():
        ray.shutdown()
    mp = pytest.MonkeyPatch()
    mp.setenv(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")
    mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 80 * MB, "node_ip_address": "127.0.0.1",
        "include_dashboard": False, "_system_config": FAST_NODE_DEATH})
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=80 * MB, node_ip_address="127.0.0.1")
    ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
    yield c
    ray.shutdown()
    c.shutdown()
    mp.undo()


def make_cfg(tmp: Path, name: str, **kw) -> RunConfig:
    space = tmp / "zdt1.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(problem_dict("zdt1")))
    opts = {"name": "zdt1", "delay": kw.pop("delay", 0.0), "log": str(tmp / f"{name}.calls"),
            "log_pid": True}
    return RunConfig(**{**dict(space=str(space), run_dir=str(tmp / name), algorithm="nsga2",
                               population=6, generations=5, seed=7,
                               objective="evocl.execution.testing:Recorded",
                               evaluator_options=opts), **kw})


def calls(tmp: Path, name: str) -> list[tuple[int, int]]:
    p = tmp / f"{name}.calls"
    return [tuple(map(int, line.split())) for line in p.read_text().splitlines()]


def n_told(run_dir: Path) -> int:
    p = run_dir / "journal.jsonl"
    return p.read_text().count('"event":"tell"') if p.exists() else 0


def kill_node(cluster, node) -> set[int]:
    """SIGKILL the node's worker processes and its raylet (no goodbye to the head); returns
    the killed worker pids."""
    import psutil
    from ray._private import ray_constants
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    workers = psutil.Process(raylet).children(recursive=True)
    for p in workers:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    os.kill(raylet, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)  # what is left of it, SIGKILL too
    return {p.pid for p in workers}


def test_node_killed_mid_search_then_one_joins(cluster, tmp_path):
    import ray
    run_search(make_cfg(tmp_path, "ref"))   # undisturbed: local, one worker
    cfg = make_cfg(tmp_path, "ray", delay=0.4, executor="ray", workers=3,
                   ray_address=cluster.address)
    run_dir = Path(cfg.run_dir)
    victim = cluster.list_all_nodes()[1]
    seen: dict[str, object] = {}
    out: dict[str, object] = {}

    def search() -> None:   # Ray's node start needs the main thread: the search runs beside it
        try:
            out["summary"] = run_search(cfg)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["error"] = e

    t = threading.Thread(target=search)
    t.start()
    end = time.monotonic() + 90
    while n_told(run_dir) < 7 and time.monotonic() < end:   # mid-generation: all 3 busy
        time.sleep(0.02)
    time.sleep(0.1)
    seen["told_before"] = n_told(run_dir)
    seen["killed"] = kill_node(cluster, victim)
    while (n_told(run_dir) < 10 or sum(n["Alive"] for n in ray.nodes()) > 2) and t.is_alive() \
            and time.monotonic() < end:
        time.sleep(0.05)
    seen["alive_before_join"] = sum(n["Alive"] for n in ray.nodes())
    cluster.add_node(num_cpus=1, object_store_memory=80 * MB, node_ip_address="127.0.0.1")
    seen["joined_while_running"] = t.is_alive() and n_told(run_dir) < 30
    t.join(120)
    assert not t.is_alive(), "the search did not finish"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    summary = out["summary"]
    assert seen["alive_before_join"] == 2 and seen["joined_while_running"]
    assert summary.n_evaluated == 30 and summary.n_pending == 0

    view, ref = read_run(run_dir), read_run(tmp_path / "ref")
    assert len(view.evaluations) == 30 and view.pending == []           # nothing told is lost
    got = sorted((c.id, c.config_hash, r.status, r.objectives) for c, r in view.evaluations)
    want = sorted((c.id, c.config_hash, r.status, r.objectives) for c, r in ref.evaluations)
    assert got == want

    # the candidate(s) running on the killed node: evaluated there, then once more elsewhere
    told_before = {c.id for c, _ in view.evaluations[:seen["told_before"]]}
    on_victim = {cid for cid, pid in calls(tmp_path, "ray")
                 if pid in seen["killed"] and cid not in told_before}
    assert on_victim, f"nothing was running on the killed node: {seen}"
    attempts = {c.id: r.metrics["attempts"] for c, r in view.evaluations}
    assert {cid for cid, a in attempts.items() if a > 1} == on_victim
    assert all(attempts[cid] == 2 for cid in on_victim)
    # the node that joined took the replacement actor: evaluations ran in 4 worker processes
    pids = {pid for _, pid in calls(tmp_path, "ray")}
    assert len(pids) == 4, pids


def write_stream(folder: Path) -> Path:
    """A user's class-incremental JSONL stream: a spec and its data file, both only here."""
    import json
    folder.mkdir(parents=True)
    rows = [{"text": f"{label} sample {i} " + "w" * (i % 7), "label": label}
            for label in ("ant", "bee", "cat", "dog") for i in range(30)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = folder / "mine.yaml"
    spec.write_text(yaml.safe_dump({"name": "mine", "scenario": "class-incremental",
                                    "source": {"format": "jsonl", "path": "rows.jsonl"},
                                    "tasks": [["ant", "bee"], ["cat", "dog"]]}))
    return spec


def test_user_stream_is_shipped_to_every_node(cluster, tmp_path):
    import shutil

    from evocl.execution.ray_executor import RayExecutor
    from evocl.streams import load_stream
    from evocl.testing.executors import candidate
    spec = write_stream(tmp_path / "laptop")
    want = load_stream(spec).fingerprint
    ex = RayExecutor("evocl.execution.testing:StreamProbe", {"stream": str(spec), "delay": 0.2},
                     workers=3, stream_fingerprint=want)
    try:
        assert Path(ex.shipped).name != "laptop" and (Path(ex.shipped) / "stream.yaml").is_file()
        shutil.rmtree(tmp_path / "laptop")      # the workers can only read the shipped copy
        ex.wait_ready(60)                         # every node has built it (and checked it)
        for i in range(6):
            ex.submit(candidate(i, x=i / 10))
        got = []
        end = time.monotonic() + 60
        while len(got) < 6 and time.monotonic() < end:
            got += list(ex.results(timeout=1))
        assert len(got) == 6
        assert all(r.ok and r.metrics["stream_fingerprint"] == want for _, r in got), got
        assert len({r.metrics["pid"] for _, r in got}) == 3   # one worker per node, each busy
    finally:
        ex.shutdown()


def test_node_with_other_data_or_missing_package_refuses(cluster, tmp_path):
    from evocl.errors import UserError
    from evocl.execution.ray_executor import RayExecutor
    spec = write_stream(tmp_path / "laptop")
    ex = RayExecutor("evocl.execution.testing:StreamProbe", {"stream": str(spec)}, workers=1,
                     stream_fingerprint="0123456789abcdef")
    try:
        with pytest.raises(UserError, match=r"Ray node 127\.0\.0\.1 \(\w+\) sees another "
                                            r"stream \(fingerprint \w+, the run's is 0123"):
            ex.wait_ready(60)
    finally:
        ex.shutdown()
    ex = RayExecutor("evocl.execution.testing:NeedsPackage", {"package": "evocl_absent_pkg"},
                     workers=1)
    try:
        with pytest.raises(UserError, match=r"Ray node 127\.0\.0\.1 \(\w+\) lacks the Python "
                                            r"package 'evocl_absent_pkg'") as e:
            ex.wait_ready(60)
        assert "\n" not in str(e.value)
    finally:
        ex.shutdown()
