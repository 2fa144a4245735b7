"""Nothing contacted or spent unless named (issue 18, item 7).

A run.yaml is data: its Ray address, storage URL and resource settings (workers, executor,
CPUs / GPUs per evaluation, Ray dashboard) are used by ``resume`` only when named again on the
command line (or in ``evocl.search``) or with ``--trust-run-settings``. Otherwise the resume
runs on this machine with the defaults and says in one line what it left out and how to use
it; run.yaml keeps the saved values. Workers beyond what the machine (or Ray cluster) has are
capped with one line, on ``search`` too.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml
from _hostile_helpers import OBJECTIVE, calls, cli, cli_subprocess, resume, zdt_run, zdt_space

import evocl
from evocl.execution.base import fit_workers, machine_cpus

pytestmark = pytest.mark.timeout(180, method="signal")

#: An address nobody answers (TEST-NET-1, RFC 5737): joining it would hang or fail, never run.
NOWHERE = "192.0.2.1:6379"


def _hostile(run: Path, tmp: Path, **settings: object) -> dict:
    """Write ``settings`` into the run's run.yaml, as an edited or received directory would."""
    meta = yaml.safe_load((run / "run.yaml").read_text())
    meta["config"].update(settings)
    (run / "run.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return meta["config"]


def _all_hostile(tmp: Path) -> dict:
    return {"ray_address": NOWHERE, "storage": f"sqlite:///{tmp / 'planted.db'}",
            "workers": 1000000, "executor": "ray", "cpus_per_eval": 64.0,
            "gpus_per_eval": 1.0, "ray_dashboard": True}


def _config(run: Path) -> dict:
    return yaml.safe_load((run / "run.yaml").read_text())["config"]


def test_resume_uses_no_setting_of_run_yaml_unless_named(tmp_path, capsys):
    run = zdt_run(tmp_path, generations=2)
    before = len(calls(tmp_path))
    saved = _hostile(run, tmp_path, **_all_hostile(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, *resume(run, "--generations", "4"))
    assert code == 0, err
    said = [str(w.message) for w in caught if "not used unless named again" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
    for key in ("ray_address", "storage", "workers", "executor", "cpus_per_eval",
                "gpus_per_eval", "ray_dashboard", "--trust-run-settings", "run.yaml"):
        assert key in said[0], said[0]
    assert "--workers 1000000" in said[0] and f"--ray-address {NOWHERE}" in said[0]
    assert not (tmp_path / "planted.db").exists()        # the storage URL was never opened
    assert len(calls(tmp_path)) == before + 8            # ran here, in this process
    after = _config(run)
    for key, value in saved.items():                      # run.yaml keeps what it left out
        if key in _all_hostile(tmp_path):
            assert after[key] == value, key
    assert after["generations"] == 4


def test_the_one_line_on_the_command_line(tmp_path):
    run = zdt_run(tmp_path, generations=1)
    _hostile(run, tmp_path, workers=1000000, ray_address=NOWHERE)
    got = cli_subprocess(*resume(run, "--generations", "2"), timeout=120)
    assert got.returncode == 0, got.stderr
    lines = [line for line in got.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("evocl: warning: "), got.stderr
    assert "workers=1000000" in lines[0] and "--trust-run-settings" in lines[0]


def test_a_setting_named_again_is_used_and_the_rest_left_out(tmp_path, capsys):
    run = zdt_run(tmp_path, generations=1)
    _hostile(run, tmp_path, **_all_hostile(tmp_path))
    named = tmp_path / "named.db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, *resume(run, "--generations", "2",
                                           "--storage", f"sqlite:///{named}"))
    assert code == 0, err
    said = [str(w.message) for w in caught if "not used unless named again" in str(w.message)]
    assert len(said) == 1 and "storage" not in said[0].split(";")[0], said
    assert named.exists() and not (tmp_path / "planted.db").exists()
    assert _config(run)["storage"] == f"sqlite:///{named}"  # named: recorded as the new one


def test_trust_run_settings_uses_run_yaml(tmp_path, capsys):
    run = zdt_run(tmp_path, generations=1)
    planted = tmp_path / "planted.db"
    _hostile(run, tmp_path, storage=f"sqlite:///{planted}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, *resume(run, "--generations", "2", "--trust-run-settings"))
    assert code == 0, err
    assert not [w for w in caught if "named again" in str(w.message)]
    assert planted.exists()


def test_python_resume_follows_the_same_rule(tmp_path):
    run = zdt_run(tmp_path, generations=1)
    _hostile(run, tmp_path, storage=f"sqlite:///{tmp_path / 'planted.db'}", workers=64)
    with pytest.warns(UserWarning, match="not used unless named again: workers=64, storage="):
        s = evocl.search(str(run), resume=True, generations=2, objective=OBJECTIVE)
    assert s.n_evaluated == 8 and not (tmp_path / "planted.db").exists()
    named = tmp_path / "named.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing left out: no line
        evocl.search(str(run), resume=True, generations=3, objective=OBJECTIVE, workers=1,
                     storage=f"sqlite:///{named}")
    assert named.exists()


def test_a_default_run_resumes_without_a_line(tmp_path, capsys):
    run = zdt_run(tmp_path, generations=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, *resume(run, "--generations", "2"))
    assert code == 0, err
    assert not [w for w in caught if "named again" in str(w.message)]


# ------------------------------------------------------------------ workers that do not fit
@pytest.mark.parametrize("workers,cpus,gpus,have,fits", [
    (100000, 1.0, 0.0, {"CPU": 2.0}, 2),
    (100000, 0.5, 0.0, {"CPU": 2.0}, 4),
    (3, 1.0, 0.0, {"CPU": 8.0}, 3),
    (16, 1.0, 0.0625, {"CPU": 16.0, "GPU": 1.0}, 16),
    (16, 1.0, 0.25, {"CPU": 16.0, "GPU": 1.0}, 4),
    (4, 1.0, 1.0, {"CPU": 16.0}, 0),         # no GPU at all: the executor refuses
])
def test_workers_are_capped_to_the_resources(workers, cpus, gpus, have, fits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fit_workers(workers, cpus, gpus, have, "this machine") == fits
    lines = [str(w.message) for w in caught]
    assert len(lines) == (1 if 0 < fits < workers else 0), lines
    if lines:
        assert f"workers={workers}" in lines[0] and f"running {fits} workers" in lines[0]


@pytest.mark.slow
def test_search_with_100000_workers_runs_what_the_machine_has(tmp_path):
    """The real command, Ray included: one line, the search finishes, at most one actor per CPU."""
    got = cli_subprocess("search", "--run-dir", tmp_path / "run", "--space",
                         zdt_space(tmp_path), "--objective", OBJECTIVE,
                         "-o", "name=zdt1", "-o", "n_var=3", "--population", "4",
                         "--generations", "1", "--workers", "100000", "--quiet", timeout=150,
                         env={"OMP_NUM_THREADS": "1"})
    assert got.returncode == 0, got.stderr[-3000:]
    lines = [line for line in got.stderr.splitlines() if "workers=100000" in line]
    assert len(lines) == 1, got.stderr[-3000:]
    assert f"running {machine_cpus()} workers" in lines[0], lines[0]
