"""Report and export on a real (fast) run: a ZDT1 search through the runner, read back."""

import json

import pytest
import yaml

from evocl.cli import main
from evocl.records import RunConfig
from evocl.runner import run_search

SPACE = """
parameters:
  x0: {type: float, low: 0, high: 1}
  x1: {type: float, low: 0, high: 1}
  x2: {type: float, low: 0, high: 1}
objectives:
  f1: {direction: minimize, ref: 1.1}
  f2: {direction: minimize, ref: 1.1}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    space = root / "zdt.yaml"
    space.write_text(SPACE)
    cfg = RunConfig(space=str(space), run_dir=str(root / "run"), objective="evocl.evolution.problems:Problem",
                    evaluator_options={"name": "zdt1", "n_var": 3}, population=8, generations=3, seed=1)
    run_search(cfg)
    return root / "run"


def test_report_writes_page_and_plots(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    for png in ("progress.png", "pareto.png", "parameters.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
        assert png in page
    assert "Pareto front" in page


def test_export_yaml_json_roundtrip(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--select", "knee", "--format", "yaml", "--out", str(tmp_path / "k.yaml")]) == 0
    doc = yaml.safe_load((tmp_path / "k.yaml").read_text())
    assert set(doc["config"]) == {"x0", "x1", "x2"}
    assert doc["provenance"]["run_seed"] == 1
    assert main(["export", str(run_dir), "--select", "pareto", "--format", "json", "--out", str(tmp_path / "p")]) == 0
    files = sorted((tmp_path / "p").glob("candidate-*.json"))
    assert files and all(json.loads(f.read_text())["evocl_export"] == 1 for f in files)


def test_export_optuna_is_read_by_optuna(run_dir, tmp_path):
    optuna = pytest.importorskip("optuna")
    out = tmp_path / "study.db"
    assert main(["export", str(run_dir), "--format", "optuna", "--out", str(out)]) == 0
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{out}")
    assert len(study.trials) == 24
    assert len(study.best_trials) >= 1
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization.matplotlib import plot_pareto_front

    plot_pareto_front(study)


def test_export_refuses_to_write_into_the_run(run_dir, capsys):
    before = (run_dir / "journal.jsonl").read_bytes()
    assert main(["export", str(run_dir), "--format", "yaml", "--out", str(run_dir / "journal.jsonl")]) == 2
    assert (run_dir / "journal.jsonl").read_bytes() == before
    assert "run directory" in capsys.readouterr().err


def test_python_api_search_and_resume(tmp_path):
    import evocl

    space = tmp_path / "zdt.yaml"
    space.write_text(SPACE)
    s = evocl.search(str(tmp_path / "api"), str(space), objective="evocl.evolution.problems:Problem",
                     evaluator_options={"name": "zdt1", "n_var": 3}, population=4, generations=2)
    assert s.n_evaluated == 8 and s.pareto_front
    s2 = evocl.search(str(tmp_path / "api"), resume=True, generations=3,
                      objective="evocl.evolution.problems:Problem")  # named again: see docs/reliability.md
    assert s2.n_evaluated == 12 and s2.resumed


def test_report_hypervolume_matches_the_engine(tmp_path):
    from evocl.report.plots import hypervolume_history
    from evocl.storage import read_run

    space = tmp_path / "zdt.yaml"
    space.write_text(SPACE)
    cfg = RunConfig(space=str(space), run_dir=str(tmp_path / "run"), objective="evocl.evolution.problems:Problem",
                    evaluator_options={"name": "zdt1", "n_var": 3}, population=8, generations=3, seed=2)
    summary = run_search(cfg)
    view = read_run(tmp_path / "run")
    xs, hv = hypervolume_history(view.evaluations, list(view.space.objectives))
    assert xs[-1] == 24 and hv == sorted(hv)
    assert hv[-1] == pytest.approx(summary.hypervolume)
