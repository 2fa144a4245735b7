"""Hostile flags and data files: values refused up front, exit 2 with one line naming the file
or flag, nothing left behind (issue 12, items 5, 6 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _hostile_helpers import (OBJECTIVE, cli, cli_subprocess, one_error_line,
                              zdt_run, zdt_space)

pytestmark = pytest.mark.timeout(180)


def zdt_search(tmp: Path, *extra: str) -> list[str]:
    return ["search", "--run-dir", str(tmp / "run"), "--space", str(zdt_space(tmp)),
            "--objective", OBJECTIVE, "-o", 'name="zdt1"', "-o", "n_var=3",
            "-o", f"log={tmp / 'calls'}", "--population", "4", "--generations", "1", "--quiet",
            *extra]


# ------------------------------------------------------------ 6. values refused up front
@pytest.mark.parametrize("flag, value, field", [
    ("--eval-timeout", "0", "eval_timeout"), ("--eval-timeout", "-1", "eval_timeout"),
    ("--max-wall-time", "nan", "max_wall_time"), ("--cpus-per-eval", "nan", "cpus_per_eval"),
    ("--gpus-per-eval", "nan", "gpus_per_eval"), ("--gpus-per-eval", "2", "gpus_per_eval"),
    ("--max-wall-time", "inf", "max_wall_time"), ("--storage", "bogus://x", "--storage"),
    ("--storage", "runs.db", "--storage"), ("--seed", "-1", "--seed"),
    ("--stagnation", "0", "stagnation"),
])
def test_bad_search_values_are_refused_before_a_run_exists(tmp_path, capsys, flag, value, field):
    code, _, err = cli(capsys, *zdt_search(tmp_path, flag, value))
    assert code == 2
    assert field in one_error_line(err)
    assert not (tmp_path / "run").exists() and not (tmp_path / "calls").exists()


def test_a_gpu_asked_of_the_local_executor_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, *zdt_search(tmp_path, "--executor", "local",
                                           "--gpus-per-eval", "0.5"))
    assert code == 2 and "--gpus-per-eval" in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_seed_minus_one_for_sample_and_train(tmp_path, capsys):
    for args in (["space", "sample", "tiny", "--seed", "-1"],
                 ["train", "--config", tmp_path / "x.yaml", "--out", tmp_path / "o", "--seed", "-1"]):
        code, _, err = cli(capsys, *args)
        assert code == 2 and "--seed" in one_error_line(err)


@pytest.mark.parametrize("option, needle", [
    ("max_length=abc", "-o max_length"), ("max_length=0", "-o max_length"),
    ("lr_decay=cosine", "-o lr_decay"), ("eval_batch_size=1.5", "-o eval_batch_size"),
    ("nosuch=1", "-o nosuch"),
])
def test_bad_evaluator_options_name_the_option(tmp_path, capsys, option, needle):
    code, _, err = cli(capsys, "search", "--run-dir", tmp_path / "run", "--space", "tiny",
                       "--stream", "synthetic", "--backbone", "tiny", "-o", option, "--quiet")
    assert code == 2 and needle in one_error_line(err)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------ stream files
def _spec(tmp: Path, data_name: str, fmt: str = "jsonl") -> Path:
    spec = tmp / "spec.yaml"
    spec.write_text(f"name: s\nsource: {{format: {fmt}, path: {data_name}}}\n"
                    "tasks:\n  - [a]\n  - [b]\n")
    return spec


def _rows(n: int = 40) -> list[dict]:
    return [{"text": f"text {i} {lab}", "label": lab} for i in range(n) for lab in "ab"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_non_utf8_stream_file_is_one_line_naming_the_file(tmp_path, fmt):
    data = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        body = "".join(json.dumps(r) + "\n" for r in _rows()).encode()
        data.write_bytes(body + b'{"text": "caf\x91", "label": "a"}\n')
    else:
        body = ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in _rows())).encode()
        data.write_bytes(body + b"caf\x91,a\n")
    spec = _spec(tmp_path, data.name, fmt)
    proc = cli_subprocess("search", "--run-dir", tmp_path / "run", "--space", "tiny", "--stream",
                          spec, "--backbone", "tiny", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)  # the whole of stderr: no warning lines either
    assert str(data) in line and "not UTF-8" in line
    assert not (tmp_path / "run").exists()


def test_an_oversized_record_is_refused_with_the_limit(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    rows = "".join(json.dumps(r) + "\n" for r in _rows())
    huge = json.dumps({"text": "w" * (2 * 1024 * 1024), "label": "a"}) + "\n"  # 2 MiB > 1 MiB
    data.write_text(rows + huge)
    code, _, err = cli(capsys, "search", "--run-dir", tmp_path / "run", "--space", "tiny",
                       "--stream", _spec(tmp_path, data.name), "--backbone", "tiny", "--quiet")
    assert code == 2
    line = one_error_line(err)
    assert f"{data}:{len(_rows()) + 1}" in line and "limit" in line


# ------------------------------------------------------------ train
def test_train_on_a_binary_file_is_one_line(tmp_path, capsys):
    blob = tmp_path / "weights.bin"
    blob.write_bytes(bytes(range(256)) * 40)
    code, _, err = cli(capsys, "train", "--config", blob, "--out", tmp_path / "out")
    assert code == 2 and str(blob) in one_error_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem", ["stream", "config", "seed", "options"])
def test_a_failed_train_leaves_no_output_folder(tmp_path, capsys, problem):
    doc = {"evocl_export": 1, "config": {"lr": 0.001, "steps_per_task": 2},
           "candidate": {"seed": 1}, "evaluator_options": {"max_length": 16},
           "provenance": {"stream": "synthetic", "backbone": "tiny"}}
    if problem == "stream":
        doc["provenance"]["stream"] = str(tmp_path / "missing-spec.yaml")
    elif problem == "config":
        doc["config"] = {"lr": "fast"}
    elif problem == "seed":
        doc["candidate"]["seed"] = "x"
    else:
        doc["evaluator_options"] = {"max_length": "abc"}
    cfg = tmp_path / "export.json"
    cfg.write_text(json.dumps(doc))
    code, _, err = cli(capsys, "train", "--config", cfg, "--out", tmp_path / "out")
    assert code == 2, err
    one_error_line(err)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ the report escapes names
def test_script_in_a_configuration_is_escaped_in_the_report(tmp_path, capsys):
    space = tmp_path / "s.yaml"
    space.write_text("parameters:\n  x: {type: float, low: 0, high: 1}\n"
                     "  mode: {type: categorical, choices: ['<script>alert(1)</script>', b]}\n"
                     "objectives: {f1: minimize, f2: minimize}\n")
    code, _, err = cli(capsys, "search", "--run-dir", tmp_path / "run", "--space", space,
                       "--objective", "evocl.execution.testing:Toy", "--population", "4",
                       "--generations", "2", "--quiet")
    assert code == 0, err
    assert cli(capsys, "report", tmp_path / "run")[0] == 0
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_resume_of_a_cl_run_needs_no_flag(tmp_path):
    """The rule is for code: `cl` is evocl's own evaluator, so its runs resume as before."""
    import yaml

    from evocl.runner import resume_config

    run = zdt_run(tmp_path, generations=1)
    meta = yaml.safe_load((run / "run.yaml").read_text())
    meta["config"]["objective"] = "cl"
    (run / "run.yaml").write_text(yaml.safe_dump(meta))
    assert resume_config(run).objective == "cl"
