"""The command line: space commands, one-line errors with exit code 2, help and version."""

import json
from pathlib import Path

import pytest

from evocl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("evocl ")
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for sub in ("search", "resume", "export", "report", "demo", "train", "space", "streams"):
        assert sub in out


def test_space_validate_shipped_spaces(capsys):
    files = sorted(str(p) for p in (ROOT / "search_spaces").glob("*.yaml"))
    code, out, err = run(capsys, "space", "validate", *files)
    assert code == 0, err
    assert out.count(": OK") == len(files)


def test_space_validate_malformed_one_line_per_problem(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  lr: {type: float, low: 1, high: 0.5}\n"
                   "  r: {type: categorical, choices: []}\nobjectives: {acc: maximize}\n")
    code, out, err = run(capsys, "space", "validate", str(bad))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert all(str(bad) in line for line in lines)
    assert any("parameters.lr" in line for line in lines)
    assert any("parameters.r" in line for line in lines)


def test_space_show_and_sample(capsys):
    code, out, _ = run(capsys, "space", "show", str(ROOT / "search_spaces" / "cl_lora.yaml"))
    assert code == 0 and "ewc_lambda" in out and "ewc = true" in out
    code, out, _ = run(capsys, "space", "sample", "tiny", "-n", "4", "--seed", "3", "--format", "jsonl")
    assert code == 0
    configs = [json.loads(line) for line in out.strip().splitlines()]
    assert len(configs) == 4
    from evocl.space import load

    space = load(ROOT / "search_spaces" / "tiny.yaml")
    for c in configs:
        space.validate_config(c)
    code2, out2, _ = run(capsys, "space", "sample", "tiny", "-n", "4", "--seed", "3", "--format", "jsonl")
    assert out2 == out


@pytest.mark.parametrize("args, needle", [
    (["search", "--bogus"], "No such option: --bogus"),
    (["space", "show", "/nonexistent/space.yaml"], "/nonexistent/space.yaml"),
    (["space", "sample", "tiny", "--format", "xml"], "--format"),
    (["search", "--run-dir", "x", "--algorithm", "cmaes"], "algorithm"),
    (["search", "--run-dir", "x", "--population", "1"], "population"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err


def _spec_with_empty_task(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i} {lab}", "label": lab}) + "\n"
                            for i in range(30) for lab in ("a", "b")))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\nscenario: class-incremental\nsource: {format: jsonl, path: data.jsonl}\n"
                    "tasks:\n  - [a, b]\n  - []\n")
    return spec


@pytest.mark.parametrize("case, needle", [
    ("unknown_param", "parameters.foo: not known to the continual-learning evaluator"),
    ("misspelled_objective", "objectives.forgeting"),
    ("unknown_stream", "unknown stream 'nosuch'"),
    ("empty_task", "spec.yaml"),
    ("missing_backbone", "/nonexistent/model"),
])
def test_search_bad_input_one_line_exit_2_and_no_run_dir(capsys, tmp_path, case, needle):
    space = str(ROOT / "search_spaces" / "tiny.yaml")
    stream, backbone = "synthetic", "tiny"
    if case == "unknown_param":
        space = str(tmp_path / "s.yaml")
        Path(space).write_text("parameters:\n  foo: {type: float, low: 0, high: 1}\nobjectives: {acc: maximize}\n")
    elif case == "misspelled_objective":
        space = str(tmp_path / "s.yaml")
        Path(space).write_text("parameters:\n  lr: {type: float, low: 0.001, high: 0.01}\n"
                               "objectives: {acc: maximize, forgeting: minimize}\n")
    elif case == "unknown_stream":
        stream = "nosuch"
    elif case == "empty_task":
        stream = str(_spec_with_empty_task(tmp_path))
    elif case == "missing_backbone":
        backbone = "/nonexistent/model"
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "search", "--run-dir", str(run_dir), "--space", space, "--stream", stream,
                         "--backbone", backbone, "--quiet")
    assert code == 2
    lines = [line for line in err.strip().splitlines() if "Warning" not in line and line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert not run_dir.exists()


def test_search_refuses_a_directory_holding_a_run(capsys, tmp_path):
    space = tmp_path / "zdt.yaml"
    space.write_text("parameters:\n  x0: {type: float, low: 0, high: 1}\n  x1: {type: float, low: 0, high: 1}\n"
                     "objectives: {f1: minimize, f2: minimize}\n")
    args = ["search", "--run-dir", str(tmp_path / "run"), "--space", str(space), "--objective",
            "evocl.evolution.problems:Problem", "-o", 'name="zdt1"', "-o", "n_var=2", "--population", "4",
            "--generations", "1", "--quiet"]
    assert run(capsys, *args)[0] == 0
    journal = (tmp_path / "run" / "journal.jsonl").read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 2 and "evocl resume" in err
    assert (tmp_path / "run" / "journal.jsonl").read_bytes() == journal


def test_search_help_reads_the_registries(capsys):
    from evocl.registry import ENGINES, EXECUTORS

    code, out, _ = run(capsys, "search", "--help")
    assert code == 0 and "--algorithm-option" in out
    # the help formatter may wrap inside a name at its hyphen ("async-" / "nsga2")
    flat = "".join(out.split())
    for name in (*ENGINES.names(), *EXECUTORS.names()):
        assert f"{name}(" in flat or f"{name}," in flat or f"{name}." in flat, name


def test_readme_names_every_engine_and_executor():
    from evocl.registry import ENGINES, EXECUTORS

    readme = (ROOT / "README.md").read_text()
    assert f"[--algorithm {'|'.join(ENGINES.names())}]" in readme
    assert f"[--executor auto|{'|'.join(EXECUTORS.names())}]" in readme


@pytest.mark.parametrize("option, needle", [
    ("etaa=3", "unknown option 'etaa'"),
    ("eta_m=-1", "eta_m: must be a number >= 0"),
    ("eta_m", "--algorithm-option: expected KEY=VALUE"),
])
def test_bad_algorithm_option_is_one_line_exit_2_and_no_run_dir(capsys, tmp_path, option, needle):
    space = tmp_path / "zdt.yaml"
    space.write_text("parameters:\n  x0: {type: float, low: 0, high: 1}\n  x1: {type: float, low: 0, high: 1}\n"
                     "objectives: {f1: minimize, f2: minimize}\n")
    code, _, err = run(capsys, "search", "--run-dir", str(tmp_path / "run"), "--space", str(space),
                       "--objective", "evocl.evolution.problems:Problem", "-o", 'name="zdt1"',
                       "-o", "n_var=2", "--algorithm-option", option, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "run").exists()
