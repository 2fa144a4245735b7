"""Hostile YAML in every file evocl reads: search spaces, stream specs, run.yaml, exported
configurations given to `train` (issue 12, items 4 and 5). A bomb that is not refused hangs:
the timeout turns that into a failure instead of a stuck suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _hostile_helpers import ROOT, cli, one_error_line, resume, zdt_run

pytestmark = pytest.mark.timeout(120)

MAX_LINE = 600  # evocl.errors.MAX_LINE: the longest error line printed
TAIL = "parameters:\n  lr: {type: float, low: 0.001, high: 0.1}\nobjectives: {acc: maximize}\n"


def billion_laughs(levels: int = 9, width: int = 10, leaf: str = "lol") -> str:
    """The classic: each anchor refers ``width`` times to the one before (width**levels)."""
    lines = [f"a0: &a0 [{', '.join([leaf] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def nested_when(depth: int) -> str:
    return ("parameters:\n  ewc: {type: bool}\n  ewc_lambda: {type: float, low: 1, high: 10, "
            "when: " + "{ewc: " * depth + "true" + "}" * depth + "}\nobjectives: {acc: maximize}\n")


# ------------------------------------------------------------------------ search spaces
def test_alias_bomb_in_a_space_is_refused(tmp_path, capsys):
    space = tmp_path / "bomb.yaml"
    space.write_text(billion_laughs() + TAIL)
    for args in (["space", "validate", space], ["space", "sample", space],
                 ["search", "--run-dir", tmp_path / "run", "--space", space, "--backbone", "tiny",
                  "--stream", "synthetic", "--quiet"]):
        code, _, err = cli(capsys, *args)
        assert code == 2, args
        line = one_error_line(err)
        assert str(space) in line and "alias bomb" in line
    assert not (tmp_path / "run").exists()


def test_recursive_alias_in_a_space_is_refused(tmp_path, capsys):
    space = tmp_path / "loop.yaml"
    space.write_text("loop: &loop [1, *loop]\n" + TAIL)
    code, _, err = cli(capsys, "space", "validate", space)
    assert code == 2 and "recursive alias" in one_error_line(err)


@pytest.mark.parametrize("depth", [1000, 300])
def test_when_nested_deeply_is_one_short_line(tmp_path, capsys, depth):
    space = tmp_path / "deep.yaml"
    space.write_text(nested_when(depth))
    for args in (["space", "validate", space],
                 ["search", "--run-dir", tmp_path / "run", "--space", space, "--quiet"]):
        code, _, err = cli(capsys, *args)
        assert code == 2, args
        line = one_error_line(err)
        assert str(space) in line and "nested deeper than" in line and len(line) <= MAX_LINE + 20


def test_a_long_error_is_capped_and_summarised(tmp_path, capsys):
    space = tmp_path / "long.yaml"
    space.write_text(nested_when(1).replace("{ewc: true}", "{ewc: [" + "x" * 6000 + "]}"))
    code, _, err = cli(capsys, "space", "validate", space)
    line = one_error_line(err)
    assert code == 2 and len(line) <= MAX_LINE + 20 and "characters omitted" in line
    assert line.startswith(f"{space}: parameters.ewc_lambda.when.ewc")


def test_int_bound_beyond_int64_is_refused_by_validate(tmp_path, capsys):
    space = tmp_path / "big.yaml"
    space.write_text("parameters:\n  n: {type: int, low: 0, high: 100000000000000000000000000000}\n"
                     "objectives: {acc: maximize}\n")
    for args in (["space", "validate", space], ["space", "sample", space, "-n", "2"]):
        code, _, err = cli(capsys, *args)
        assert code == 2
        assert "parameters.n.high" in one_error_line(err)


def test_oversized_and_binary_space_files(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text(TAIL + "# " + "x" * (2 * 1024 * 1024) + "\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"parameters:\n  lr\x91: {type: float}\n")
    for f, needle in ((big, "limit"), (binary, "not UTF-8")):
        code, _, err = cli(capsys, "space", "validate", f)
        assert code == 2
        line = one_error_line(err)
        assert str(f) in line and needle in line


# ------------------------------------------------------------------------ stream specs
def test_alias_bomb_in_a_stream_spec_is_refused(tmp_path, capsys):
    spec = tmp_path / "bomb-stream.yaml"
    leaf = "'" + "w" * 1000 + "'"
    tasks = [f"  - &t0 [{', '.join([leaf] * 10)}]"]
    tasks += [f"  - &t{i} [{', '.join([f'*t{i - 1}'] * 10)}]" for i in range(1, 5)]
    spec.write_text("source: {format: jsonl, path: data.jsonl}\ntasks:\n" + "\n".join(tasks) + "\n")
    (tmp_path / "data.jsonl").write_text("".join(
        json.dumps({"text": f"text {i}", "label": lab}) + "\n" for i in range(20) for lab in "ab"))
    code, _, err = cli(capsys, "search", "--run-dir", tmp_path / "run", "--space", "tiny",
                       "--stream", spec, "--backbone", "tiny", "--quiet")
    assert code == 2
    line = one_error_line(err)
    assert str(spec) in line and "alias bomb" in line
    assert not (tmp_path / "run").exists()


def test_nested_stream_spec_is_refused(tmp_path, capsys):
    spec = tmp_path / "deep-stream.yaml"
    spec.write_text("source: {format: jsonl, path: data.jsonl}\ntasks: "
                    + "[" * 1000 + "]" * 1000 + "\n")
    code, _, err = cli(capsys, "search", "--run-dir", tmp_path / "run", "--space", "tiny",
                       "--stream", spec, "--backbone", "tiny", "--quiet")
    assert code == 2 and "nested deeper than" in one_error_line(err)


# ------------------------------------------------------------------------ run.yaml
def test_alias_bomb_in_run_yaml_is_refused(tmp_path, capsys):
    run = zdt_run(tmp_path)
    text = (run / "run.yaml").read_text().replace("changes: []\n", "changes: *a8\n")
    (run / "run.yaml").write_text(billion_laughs() + text)
    for args in (["report", run, "--out", tmp_path / "rep"], resume(run),
                 ["export", run, "--format", "yaml", "--out", tmp_path / "k.yaml"]):
        code, _, err = cli(capsys, *args)
        assert code == 2, args
        line = one_error_line(err)
        assert "run.yaml" in line and "alias bomb" in line


# ------------------------------------------------------------------------ train --config
@pytest.mark.parametrize("content, needle", [
    (billion_laughs() + "config: *a8\n", "alias bomb"),
    ("config: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n", "nested deeper than"),
    (bytes(range(256)) * 12, "not UTF-8"),
], ids=["alias-bomb", "nested", "binary"])
def test_hostile_export_given_to_train(tmp_path, capsys, content, needle):
    cfg = tmp_path / "export.yaml"
    if isinstance(content, bytes):
        cfg.write_bytes(content)
    else:
        cfg.write_text(content)
    code, _, err = cli(capsys, "train", "--config", cfg, "--out", tmp_path / "out")
    assert code == 2
    line = one_error_line(err)
    assert str(cfg) in line and needle in line
    assert not (tmp_path / "out").exists()


def test_every_yaml_reader_goes_through_the_limits():
    """No module reads YAML around evocl.yamlsafe (a new reader would miss the limits)."""
    for py in (ROOT / "evocl").rglob("*.py"):
        text = py.read_text()
        for call in ("yaml.safe_load(", "yaml.load(", "yaml.full_load(", "yaml.unsafe_load("):
            assert call not in text, f"{py} calls {call}; use evocl.yamlsafe.read_yaml"


def test_shipped_spaces_and_a_real_run_yaml_are_within_the_limits(tmp_path, capsys):
    files = sorted(str(p) for p in (ROOT / "search_spaces").glob("*.yaml"))
    code, out, err = cli(capsys, "space", "validate", *files)
    assert code == 0 and out.count(": OK") == len(files), err
    run = zdt_run(tmp_path, generations=2)
    from evocl.yamlsafe import read_yaml
    assert read_yaml(run / "run.yaml")["kind"] == "evocl-run"
    assert yaml.safe_load(Path(run / "run.yaml").read_text())["kind"] == "evocl-run"
