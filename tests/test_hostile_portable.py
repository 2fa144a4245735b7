"""Hostile places and values the probe of issue 18 found giving tracebacks (items 5, 6, 8): a
run directory where none can be made, an empty path, a storage that cannot be opened, a
dashboard without its packages, objectives too large to draw. Each is one line and exit 2
with nothing created, or handled."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from _hostile_helpers import OBJECTIVE, cli, one_error_line, zdt_run, zdt_space

pytestmark = pytest.mark.timeout(180)


def zdt_search(tmp: Path, run_dir: str, *extra: str) -> list[str]:
    return ["search", "--run-dir", run_dir, "--space", str(zdt_space(tmp)),
            "--objective", OBJECTIVE, "-o", 'name="zdt1"', "-o", "n_var=3",
            "-o", f"log={tmp / 'calls'}", "--population", "4", "--generations", "1", "--quiet",
            *extra]


# ------------------------------------------------------- 5. where no run directory can be made
def test_a_run_dir_under_proc_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, *zdt_search(tmp_path, "/proc/self/evocl-run"))
    assert code == 2
    assert "cannot create a run directory" in one_error_line(err)
    assert not (tmp_path / "calls").exists()


@pytest.fixture
def read_only_mount(tmp_path):
    """A real read-only file system (tmpfs mounted ro): needs root, as in CI."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.strip()[:200]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_search_and_export_on_a_read_only_file_system(tmp_path, capsys, read_only_mount):
    code, _, err = cli(capsys, *zdt_search(tmp_path, str(read_only_mount / "run")))
    assert code == 2
    line = one_error_line(err)
    assert "cannot create a run directory" in line and "Read-only file system" in line
    run = zdt_run(tmp_path)
    for args in (["export", run, "--out", read_only_mount / "best.yaml"],
                 ["export", run, "--format", "json", "--out", read_only_mount / "sub"],
                 ["report", run, "--out", read_only_mount / "report"],
                 ["compare", run, run, "--out", read_only_mount / "cmp"]):
        code, _, err = cli(capsys, *args)
        assert code == 2, args
        assert "Read-only file system" in one_error_line(err), args


# ----------------------------------------------------------------------- 6. an empty path
@pytest.mark.parametrize("args", [
    ["search", "--run-dir", ""], ["search", "--run-dir="], ["resume", ""],
    ["report", ""], ["export", "", "--out", "x.yaml"], ["search", "--run-dir", "r", "--space", " "],
])
def test_an_empty_path_is_refused_not_taken_as_the_current_directory(tmp_path, capsys,
                                                                     monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *args)
    assert code == 2
    assert "empty value" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------- 8. a storage that cannot be opened
def test_an_unopenable_sqlite_storage_is_refused_before_the_run_exists(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    code, _, err = cli(capsys, *zdt_search(tmp_path, str(tmp_path / "run"), "--storage", url))
    assert code == 2
    line = one_error_line(err)
    assert "--storage" in line and "cannot open" in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "calls").exists()


def test_an_openable_sqlite_storage_still_mirrors(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/runs.db"
    code, _, err = cli(capsys, *zdt_search(tmp_path, str(tmp_path / "run"), "--storage", url))
    assert code == 0, err
    import optuna

    study = optuna.load_study(study_name="run", storage=url)
    assert len(study.trials) >= 4


# ------------------------------------------------------ 5. a dashboard without its packages
def test_ray_dashboard_without_its_packages_is_one_line(tmp_path, capsys):
    from ray._private.utils import get_dashboard_dependency_error

    if get_dashboard_dependency_error() is None:
        pytest.skip("Ray's dashboard packages are installed here: nothing to refuse")
    code, _, err = cli(capsys, *zdt_search(tmp_path, str(tmp_path / "run"),
                                           "--workers", "2", "--ray-dashboard"))
    assert code == 2
    line = one_error_line(err)
    assert "--ray-dashboard" in line and "ray[default]" in line
    assert not (tmp_path / "run").exists()


# ------------------------------------------------ 5. finite objectives too large to be drawn
def _huge(run: Path, values: dict[int, dict[str, float]]) -> None:
    journal = run / "journal.jsonl"
    lines = []
    for line in journal.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "tell" and event["id"] in values:
            event["result"]["objectives"].update(values[event["id"]])
        lines.append(json.dumps(event))
    journal.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("values", [
    {2: {"f1": 1e308}, 3: {"f1": -1e308}},          # one axis spanning the whole float range
    {2: {"f2": -1e308}, 3: {"f2": 1e308}, 4: {"f1": 1e200}},
])
def test_report_and_compare_with_huge_objectives(tmp_path, capsys, values):
    plain = zdt_run(tmp_path, "plain", generations=4)
    huge = zdt_run(tmp_path, "huge", generations=4)
    _huge(huge, values)
    code, out, err = cli(capsys, "report", huge, "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    assert "left out of the figures" in page and "1e+308" in page
    assert "computed on ranks" in page          # fANOVA on ranks, not a variance overflow
    code, out, err = cli(capsys, "compare", huge, plain, "--out", tmp_path / "cmp")
    assert code == 0, err
    assert "left out of the figures" in (tmp_path / "cmp" / "index.html").read_text()
