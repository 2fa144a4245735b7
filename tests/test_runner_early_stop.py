"""Searches with early stopping (``--early-stop asha``): journal, resume after kill -9 between
rungs, exports, the Optuna mirror, the CLI, Ray's report channel and the CL evaluator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from evocl.cli import main
from evocl.errors import UserError
from evocl.evolution.problems import problem_dict
from evocl.records import RunConfig
from evocl.runner import run_search
from evocl.storage import read_run

sys.path.insert(0, str(Path(__file__).parent))
from test_runner_resume import calls, comparable, run_and_kill  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def asha_cfg(tmp: Path, name: str, algorithm: str = "nsga2", delay: float = 0.0,
             **kw) -> RunConfig:
    space = tmp / "zdt1.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(problem_dict("zdt1", n_var=4)))
    opts = {"name": "zdt1", "n_var": 4, "delay": delay, "tasks": 7,
            "log": str(tmp / f"{name}.calls"), "fail_every": 9}
    base = dict(space=str(space), run_dir=str(tmp / name), algorithm=algorithm, population=6,
                generations=4, seed=5, objective="evocl.execution.testing:Recorded",
                evaluator_options=opts, snapshot_every=3, early_stop="asha",
                early_stop_options={"rungs": [2, 4]})
    base.update(kw)
    return RunConfig(**base)


def decisions(run_dir: Path) -> list[tuple[int, int, bool]]:
    return [(e["id"], e["report"]["tasks_seen"], e["continue"])
            for e in read_run(run_dir).events if e["event"] == "report"]


def journal_lines_of_reports(run_dir: Path) -> dict[tuple[int, int], tuple[int, bool]]:
    """(candidate, tasks seen) -> (journal lines up to its decision, the decision)."""
    lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    return {(e["id"], e["report"]["tasks_seen"]): (i + 1, e["continue"])
            for i, e in enumerate(lines) if e["event"] == "report"}


def test_asha_search_prunes_and_keeps_pruned_off_fronts_and_exports(tmp_path):
    cfg = asha_cfg(tmp_path, "run")
    summary = run_search(cfg)
    view = read_run(tmp_path / "run")
    pruned = {c.id: r for c, r in view.evaluations if r.status == "pruned"}
    assert summary.n_evaluated == 24 and summary.n_pruned == len(pruned) >= 8
    assert summary.n_failed == sum(r.status == "failed" for _, r in view.evaluations) >= 1
    assert summary.seconds_saved >= 0.0
    # every pruned candidate: a journaled stop at a rung, before its tell; partial objectives
    events = view.events
    for cid, res in pruned.items():
        t = res.metrics["tasks_trained"]
        assert t in (2, 4) and res.metrics["tasks_planned"] == 7 and set(res.objectives) == {"f1", "f2"}
        stop = next(i for i, e in enumerate(events) if e["event"] == "report"
                    and e["id"] == cid and not e["continue"])
        tell = next(i for i, e in enumerate(events) if e["event"] == "tell" and e["id"] == cid)
        assert stop < tell and events[stop]["report"]["tasks_seen"] == t
    # a decision per (candidate, task count), every task but the last, rungs only stop
    seen = decisions(tmp_path / "run")
    assert len(seen) == len({(c, t) for c, t, _ in seen})
    assert all(ok for _, t, ok in seen if t not in (2, 4))
    assert sorted(calls(tmp_path, "run")) == list(range(24))   # none re-evaluated
    # never on the front, never exported, never the summary's front
    front = {c.id for c, _ in view.pareto_front()}
    assert front and not front & set(pruned)
    assert not {c.id for c, _ in summary.pareto_front} & set(pruned)
    out = tmp_path / "front"
    assert main(["export", str(tmp_path / "run"), "--select", "pareto", "--format", "json",
                 "--out", str(out)]) == 0
    exported = {int(p.name.split("-")[1].split(".")[0]) for p in out.glob("candidate-*")}
    assert exported == front
    with pytest.raises(UserError, match=r"was pruned after \d tasks"):
        from evocl.export import export_run
        export_run(tmp_path / "run", select=f"id:{min(pruned)}", fmt="yaml",
                   out=tmp_path / "p.yaml")
    # the Optuna export: PRUNED trials with an intermediate value per task seen
    db = tmp_path / "study.db"
    assert main(["export", str(tmp_path / "run"), "--format", "optuna", "--out", str(db)]) == 0
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{db}")
    trials = {t.user_attrs["candidate_id"]: t for t in study.trials}
    for cid, res in pruned.items():
        t = trials[cid]
        assert t.state == optuna.trial.TrialState.PRUNED and t.values is None
        assert sorted(t.intermediate_values) == list(range(1, res.metrics["tasks_trained"] + 1))
    full = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert full and all(sorted(t.intermediate_values) == list(range(1, 7)) for t in full)
    # the report page counts them and the time saved
    from evocl.report import write_report
    page = write_report(tmp_path / "run").read_text()
    assert f"{len(pruned)} pruned early by <b>asha</b>" in page


def test_same_seed_same_decisions_and_none_changes_nothing(tmp_path):
    run_search(asha_cfg(tmp_path, "a"))
    run_search(asha_cfg(tmp_path, "b"))
    assert decisions(tmp_path / "a") == decisions(tmp_path / "b")
    assert comparable(tmp_path / "a") == comparable(tmp_path / "b")
    s = run_search(asha_cfg(tmp_path, "none", early_stop="none", early_stop_options={}))
    assert s.n_pruned == 0 and decisions(tmp_path / "none") == []
    assert all(r.status != "pruned" for _, r in read_run(tmp_path / "none").evaluations)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["nsga2", "async-nsga2"])
def test_killed_between_rungs_and_resumed_equals_uninterrupted(tmp_path, algorithm):
    """kill -9 right after a decision was journaled: a candidate continuing between rungs (its
    model lost), one stopped but not told yet, one past the last rung; resumed each time, the
    run equals the uninterrupted one."""
    run_search(asha_cfg(tmp_path, "ref", algorithm))
    ref, ref_decisions = comparable(tmp_path / "ref"), decisions(tmp_path / "ref")
    reports = journal_lines_of_reports(tmp_path / "ref")
    go2 = [k for k, (_, ok) in reports.items() if k[1] == 2 and ok]
    stop = [k for k, (_, ok) in reports.items() if not ok]
    go4 = [k for k, (_, ok) in reports.items() if k[1] == 4 and ok]
    pauses = sorted({go2[1], stop[2], go2[len(go2) // 2], go4[-1]}, key=lambda k: reports[k][0])
    cfg = asha_cfg(tmp_path, "killed", algorithm)
    cfg = cfg.replace(evaluator_options={**cfg.evaluator_options,
                                         "pause_at": [list(k) for k in pauses]})
    for n, key in enumerate(pauses):
        assert run_and_kill(cfg, resume=n > 0, after_lines=reports[key][0])
        last = json.loads((tmp_path / "killed" / "journal.jsonl").read_text().splitlines()[-1])
        assert (last["event"], last["id"], last["report"]["tasks_seen"]) == ("report", *key)
    summary = run_search(cfg, resume=True)
    assert summary.n_evaluated == 24 and summary.resumed
    assert comparable(tmp_path / "killed") == ref
    assert decisions(tmp_path / "killed") == ref_decisions   # no decision made twice
    c = calls(tmp_path, "killed")
    assert set(c) == set(range(24)) and len(c) == 24 + len(pauses)  # re-run once per kill


def test_changed_early_stop_settings_are_refused_on_resume(tmp_path):
    from evocl.errors import RunDirError
    cfg = asha_cfg(tmp_path, "run", budget=5, generations=None)
    run_search(cfg)
    with pytest.raises(RunDirError, match="early_stop_options"):
        run_search(cfg.replace(early_stop_options={"rungs": [3]}), resume=True)
    with pytest.raises(RunDirError, match="early_stop: 'asha' -> 'none'"):
        run_search(cfg.replace(early_stop="none"), resume=True)
    # a journal whose decisions the scheduler no longer makes: refused, not silently reused
    journal = tmp_path / "run" / "journal.jsonl"
    events = [json.loads(x) for x in journal.read_text().splitlines()]
    flip = next(e for e in events if e["event"] == "report" and e["report"]["tasks_seen"] == 2)
    flip["continue"] = not flip["continue"]
    journal.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(RunDirError, match="early stop decision"), \
            pytest.warns(UserWarning, match="replaying the whole journal"):
        run_search(cfg.replace(budget=8), resume=True)


def test_cli_early_stop_flags(tmp_path, capsys):
    space = tmp_path / "zdt1.yaml"
    space.write_text(yaml.safe_dump(problem_dict("zdt1", n_var=4)))
    common = ["search", "--space", str(space), "--objective", "evocl.evolution.problems:Problem",
              "-o", "name=\"zdt1\"", "-o", "n_var=4", "--population", "4", "--generations", "2",
              "--quiet"]
    assert main([*common, "--run-dir", str(tmp_path / "a"), "--early-stop", "ashaa"]) == 2
    assert "early_stop: must be one of none, asha, model, got 'ashaa'; did you mean 'asha'" in \
        capsys.readouterr().err
    assert main([*common, "--run-dir", str(tmp_path / "b"), "--early-stop", "asha",
                 "--early-stop-option", "eta=1"]) == 2
    err = capsys.readouterr().err
    assert "eta: must be an int >= 2, got 1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    # a target that cannot report after each task
    assert main(["search", "--space", str(space), "--objective", "evocl.execution.testing:Toy",
                 "--population", "4", "--generations", "1", "--quiet",
                 "--run-dir", str(tmp_path / "c"), "--early-stop", "asha"]) == 2
    assert "takes no on_task_end argument" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main([*common, "--run-dir", str(tmp_path / "d"), "-o", "tasks=5",
                 "--early-stop", "asha", "--early-stop-option", "eta=2"]) == 0
    out = capsys.readouterr().out
    assert "pruned early" in out
    meta = yaml.safe_load((tmp_path / "d" / "run.yaml").read_text())
    assert meta["config"]["early_stop"] == "asha"
    assert meta["config"]["early_stop_options"] == {"eta": 2}
    # issue 22's flags: the cheap pass, model-based stopping, cost-aware proposals
    assert main([*common, "--run-dir", str(tmp_path / "e"), "--low-fidelity", "0.3"]) == 2
    assert "--low-fidelity: needs an early-stop scheduler" in capsys.readouterr().err
    assert main([*common, "--run-dir", str(tmp_path / "e"), "--early-stop", "asha",
                 "--low-fidelity", "1.5"]) == 2
    assert "low_fidelity: must be a number in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    assert main([*common, "--run-dir", str(tmp_path / "f"), "-o", "tasks=5",
                 "--early-stop", "model", "--low-fidelity", "0.3", "--algorithm", "sa-nsga2",
                 "--cost-aware"]) == 0
    meta = yaml.safe_load((tmp_path / "f" / "run.yaml").read_text())["config"]
    assert meta["early_stop"] == "model" and meta["early_stop_options"] == {"low_fidelity": 0.3}
    assert meta["algorithm_options"] == {"cost_aware": True}
    from evocl.report import write_report
    page = write_report(tmp_path / "f").read_text()
    assert "model-based stopping" in page and "cost-aware proposals" in page


def test_optuna_tpe_uses_optunas_pruner_on_one_objective(tmp_path):
    space = tmp_path / "one.yaml"
    d = problem_dict("zdt1", n_var=4)
    d["objectives"] = {"f1": {"direction": "minimize", "ref": 1.1}}
    space.write_text(yaml.safe_dump(d))
    cfg = RunConfig(space=str(space), run_dir=str(tmp_path / "run"), algorithm="optuna-tpe",
                    objective="evocl.evolution.problems:Problem", budget=12, seed=2,
                    evaluator_options={"name": "zdt1", "n_var": 4, "tasks": 5},
                    early_stop="asha", snapshot_every=2)
    summary = run_search(cfg)
    assert summary.n_pruned >= 3
    from evocl.storage.rundir import snapshot_files
    snap = snapshot_files(tmp_path / "run")[-1]
    state = json.loads(snap.read_text())["engine"]
    assert state["extra"]["pruner"] == {"eta": 3, "min_tasks": 2}
    assert sum(t["state"] == "pruned" for t in state["extra"]["trials"]) == summary.n_pruned
    # resumed (whole journal replayed through the engine's own pruner) = the same run
    for p in (tmp_path / "run" / "snapshots").iterdir():
        p.unlink()
    s = run_search(cfg.replace(budget=16), resume=True)
    ref = run_search(cfg.replace(run_dir=str(tmp_path / "ref"), budget=16))
    assert s.n_evaluated == 16 and comparable(tmp_path / "run") == comparable(tmp_path / "ref")
    assert ref.n_pruned == s.n_pruned


def test_tiny_cl_search_with_asha(tmp_path):
    """The real CL evaluator: reports with accuracy rows, pruned results with partial metrics."""
    pytest.importorskip("evocl.cl")
    space = yaml.safe_load((ROOT / "search_spaces" / "tiny.yaml").read_text())
    # one objective known before training ends, so the decision does not hang on what a
    # tiny model learns: the second candidate (rank 4) is worse than the first (rank 2)
    space["objectives"] = {"trainable_params": "minimize"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(space))
    small = {"lr": 1e-2, "steps_per_task": 2, "lora_rank": 2, "replay": False, "ewc": False}
    large = {"lr": 1e-2, "steps_per_task": 2, "lora_rank": 4, "replay": True,
             "replay_ratio": 0.5, "ewc": False}
    cfg = RunConfig(space=str(tmp_path / "params.yaml"), initial=[small, large],
                    run_dir=str(tmp_path / "run"), stream="synthetic", backbone="tiny",
                    objective="cl", algorithm="random", population=4, budget=3, device="cpu",
                    seed=0, early_stop="asha", early_stop_options={"eta": 2}, fitness_tasks=3,
                    evaluator_options={"max_eval_per_task": 16})
    summary = run_search(cfg)
    view = read_run(tmp_path / "run")
    assert summary.n_evaluated == 3 and summary.n_failed == 0
    assert view.evaluations[1][1].status == "pruned" and view.evaluations[0][1].ok
    for c, r in view.evaluations:
        reps = view.reports[c.id]
        assert [x["tasks_seen"] for x in reps] == list(range(1, len(reps) + 1))
        assert len(reps[-1]["R"]) == reps[-1]["tasks_seen"]
        if r.status == "pruned":
            t = r.metrics["tasks_trained"]
            assert len(reps) == t and len(r.metrics["accuracy_matrix"]) == t
            assert r.objectives["acc"] == pytest.approx(reps[-1]["acc"])
        else:
            assert len(reps) == r.metrics["tasks_planned"] - 1


# ------------------------------------------------------------------ the cheap pass (issue 22)
SCHEDULERS_AT_LOW = {"asha": {"low_fidelity": 0.25, "rungs": [3]},
                     "model": {"low_fidelity": 0.25, "rungs": [3], "min_results": 4,
                               "min_residuals": 2, "quantile": 0.5}}


def low_cfg(tmp: Path, name: str, algorithm: str = "nsga2", scheduler: str = "asha",
            **kw) -> RunConfig:
    return asha_cfg(tmp, name, algorithm, early_stop=scheduler,
                    early_stop_options=SCHEDULERS_AT_LOW[scheduler], **kw)


def test_low_fidelity_search_prunes_at_the_cheap_pass_and_records_it(tmp_path):
    summary = run_search(low_cfg(tmp_path, "run"))
    view = read_run(tmp_path / "run")
    meta = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert meta["config"]["early_stop_options"] == {"low_fidelity": 0.25, "rungs": [3]}
    low = [(c, t, ok) for c, t, ok in decisions(tmp_path / "run") if t == 7]
    ok_ids = {c.id for c, r in view.evaluations if r.ok}
    assert len(low) == 24   # every candidate's cheap pass reported once (failures come later)
    cheap_stops = {c for c, _, ok in low if not ok}
    assert cheap_stops and all(view.evaluations[c][1].metrics["tasks_trained"] == 0
                               for c in cheap_stops)
    for c, r in view.evaluations:
        reps = view.reports.get(c.id, [])
        if c.id in ok_ids:   # promoted: the cheap report first, then tasks 1..6 at full steps
            assert sorted(x["tasks_seen"] for x in reps) == [1, 2, 3, 4, 5, 6, 7]
            assert [x.get("fidelity") for x in reps if x["tasks_seen"] == 7] == [0.25]
    assert summary.seconds_saved >= 0.0
    study_db = tmp_path / "study.db"
    assert main(["export", str(tmp_path / "run"), "--format", "optuna",
                 "--out", str(study_db)]) == 0
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{study_db}")
    by_id = {t.user_attrs["candidate_id"]: t for t in study.trials}
    for c in cheap_stops:
        assert by_id[c].state == optuna.trial.TrialState.PRUNED
        assert list(by_id[c].intermediate_values) == [0]
    from evocl.report import write_report
    page = write_report(tmp_path / "run").read_text()
    assert (f"cheap pass (every task at 0.25 of its steps): 24 candidates, {len(cheap_stops)} "
            f"stopped there, {24 - len(cheap_stops)} promoted") in page


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["asha", "model"])
def test_low_fidelity_killed_between_rungs_and_resumed_equals_uninterrupted(tmp_path,
                                                                            scheduler):
    """kill -9 after the cheap pass's decision (promoted, not yet trained at full steps), after
    a cheap stop not yet told, and after the 3-task rung: the resumed run equals the
    uninterrupted one and no decision is made twice (``model``: its trees refitted from the
    journal's reports and results reach every recorded decision again)."""
    run_search(low_cfg(tmp_path, "ref", scheduler=scheduler))
    ref, ref_decisions = comparable(tmp_path / "ref"), decisions(tmp_path / "ref")
    reports = journal_lines_of_reports(tmp_path / "ref")
    go_low = [k for k, (_, ok) in reports.items() if k[1] == 7 and ok]
    stop_low = [k for k, (_, ok) in reports.items() if k[1] == 7 and not ok]
    at3 = [k for k in reports if k[1] == 3]
    pauses = sorted({go_low[1], stop_low[1], at3[-1]}, key=lambda k: reports[k][0])
    cfg = low_cfg(tmp_path, "killed", scheduler=scheduler)
    cfg = cfg.replace(evaluator_options={**cfg.evaluator_options,
                                         "pause_at": [list(k) for k in pauses]})
    for n, key in enumerate(pauses):
        assert run_and_kill(cfg, resume=n > 0, after_lines=reports[key][0])
    summary = run_search(cfg, resume=True)
    assert summary.n_evaluated == 24
    assert comparable(tmp_path / "killed") == ref
    assert decisions(tmp_path / "killed") == ref_decisions
