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
