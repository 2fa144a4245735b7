"""A run directory is a closed box (issue 18, items 1 and 4): no link inside it is followed,
only regular files are read (a FIFO is refused at once, never waited on), nothing is written
outside it; report, compare, export and train write only into folders that are new, empty or
their own (a manifest), unless --force."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from _hostile_helpers import OBJECTIVE, cli, one_error_line, resume, zdt_run, zdt_space

from evocl.errors import UnsafePathError, UserError
from evocl.safefile import Box, read_bytes
from evocl.storage.outdir import MANIFEST, OutputFolder

pytestmark = pytest.mark.timeout(120, method="signal")  # a FIFO that blocked would hang here

OUTSIDE = b"the user's own file, outside the run directory\n"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    return zdt_run(tmp_path_factory.mktemp("box"), generations=3)


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    shutil.copytree(base_run, tmp_path / "run")
    return tmp_path / "run"


def _refused(capsys, *args: object, name: str, rule: str = "symbolic link") -> str:
    code, _, err = cli(capsys, *args)
    assert code == 2, err
    line = one_error_line(err)
    assert name in line and rule in line, line
    return line


def _link_file(run: Path, name: str, tmp: Path) -> Path:
    target = tmp / f"outside-{name}"
    target.write_bytes(OUTSIDE)
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    return target


# ----------------------------------------------------------- 1. links inside a run directory
@pytest.mark.parametrize("name", ["lock", "journal.jsonl", "optuna.journal", "run.yaml",
                                  "journal.quarantine"])
def test_a_file_linked_out_of_the_run_is_refused_and_untouched(run, tmp_path, capsys, name):
    target = _link_file(run, name, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.is_symlink()}
    line = _refused(capsys, *resume(run, "--generations", "4"), name=name)
    assert "inside a run directory" in line
    assert target.read_bytes() == OUTSIDE
    assert {p.name: p.read_bytes() for p in run.iterdir()
            if p.is_file() and not p.is_symlink()} == before
    # reading the run refuses the link too: report and export name it
    _refused(capsys, "report", run, "--out", tmp_path / "rep", name=name)
    _refused(capsys, "export", run, "--out", tmp_path / "k.yaml", name=name)
    assert target.read_bytes() == OUTSIDE and not (tmp_path / "rep").exists()


def test_snapshots_linked_to_a_folder_are_refused_and_its_files_kept(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(5):
        (elsewhere / f"engine-{i}.json").write_bytes(OUTSIDE)
    shutil.rmtree(run / "snapshots")
    (run / "snapshots").symlink_to(elsewhere)
    _refused(capsys, *resume(run, "--generations", "4"), name="snapshots")
    assert sorted(p.name for p in elsewhere.iterdir()) == [f"engine-{i}.json" for i in range(5)]
    assert all(p.read_bytes() == OUTSIDE for p in elsewhere.iterdir())


def test_report_linked_to_a_folder_is_refused_and_its_page_kept(run, tmp_path, capsys):
    elsewhere = tmp_path / "site"
    elsewhere.mkdir()
    (elsewhere / "index.html").write_bytes(OUTSIDE)
    (run / "report").symlink_to(elsewhere)
    _refused(capsys, "report", run, name="report")
    # naming it through the run directory as --out is no way around the rule
    _refused(capsys, "report", run, "--out", run / "report", name="report")
    # nor --force: --force overrides the manifest rule, never the box
    _refused(capsys, "report", run, "--force", name="report")
    assert [p.name for p in elsewhere.iterdir()] == ["index.html"]
    assert (elsewhere / "index.html").read_bytes() == OUTSIDE


def test_a_link_inside_an_output_folder_is_never_written_through(run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli(capsys, "report", run, "--out", out)[0] == 0
    target = tmp_path / "victim.png"
    target.write_bytes(OUTSIDE)
    (out / "pareto.png").unlink()
    (out / "pareto.png").symlink_to(target)       # planted after evocl wrote the folder
    _refused(capsys, "report", run, "--out", out, "--force", name="pareto.png")
    assert target.read_bytes() == OUTSIDE and (out / "pareto.png").is_symlink()


def test_export_links_inside_the_run_are_not_followed(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "exports").symlink_to(elsewhere)
    _refused(capsys, "export", run, "--out", run / "exports" / "k.yaml", name="exports")
    _refused(capsys, "export", run, "--format", "hf", "--out", run / "exports" / "hf",
             name="exports")
    assert list(elsewhere.iterdir()) == []


def test_the_run_directory_itself_may_be_a_link_the_user_named(run, tmp_path, capsys):
    link = tmp_path / "my-run"
    link.symlink_to(run)
    told = (run / "journal.jsonl").read_text().count('"event":"tell"')
    code, _, err = cli(capsys, *resume(link, "--generations", "4"))
    assert code == 0, err
    assert (run / "journal.jsonl").read_text().count('"event":"tell"') == told + 4
    assert cli(capsys, "report", link)[0] == 0
    assert (run / "report" / "index.html").is_file()


def test_fresh_search_into_a_folder_with_a_planted_link_is_refused(tmp_path, capsys):
    run = tmp_path / "new"
    run.mkdir()
    target = tmp_path / "victim"
    target.write_bytes(OUTSIDE)
    (run / "lock").symlink_to(target)
    code, _, err = cli(capsys, "search", "--run-dir", run, "--space", zdt_space(tmp_path),
                       "--objective", OBJECTIVE, "-o", "name=zdt1", "-o", "n_var=3",
                       "--generations", "1", "--population", "4", "--quiet")
    assert code == 2 and "lock" in one_error_line(err) and "symbolic link" in err
    assert target.read_bytes() == OUTSIDE and not (run / "run.yaml").exists()


def test_a_device_or_fifo_in_the_run_is_refused(run, capsys):
    (run / "optuna.journal").unlink(missing_ok=True)
    os.mkfifo(run / "optuna.journal")
    _refused(capsys, *resume(run, "--generations", "4"), name="optuna.journal", rule="FIFO")
    (run / "optuna.journal").unlink()
    (run / "journal.jsonl").rename(run / "j.bak")
    (run / "journal.jsonl").symlink_to("/dev/zero")
    _refused(capsys, "report", run, name="journal.jsonl")


# --------------------------------------------------------------------------- 4. FIFOs
def test_space_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    _refused(capsys, "space", "validate", fifo, name="space.yaml", rule="FIFO")
    _refused(capsys, "space", "show", fifo, name="space.yaml", rule="FIFO")
    _refused(capsys, "search", "--run-dir", tmp_path / "r", "--space", fifo, "--objective",
             OBJECTIVE, "--generations", "1", "--quiet", name="space.yaml", rule="FIFO")
    assert not (tmp_path / "r").exists()


def test_run_yaml_space_that_is_a_fifo_is_refused_on_resume(run, tmp_path, capsys):
    fifo = tmp_path / "space-fifo.yaml"
    os.mkfifo(fifo)
    meta = yaml.safe_load((run / "run.yaml").read_text())
    meta["config"]["space"] = str(fifo)
    (run / "run.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    _refused(capsys, *resume(run, "--generations", "4"), name="space-fifo.yaml", rule="FIFO")


def test_a_fifo_named_like_a_snapshot_is_ignored_not_read(run, capsys):
    os.mkfifo(run / "snapshots" / "engine-99.json")
    with pytest.warns(UserWarning, match=r"engine-99.json: snapshot ignored \(is a FIFO"):
        code, _, err = cli(capsys, *resume(run, "--generations", "4"))
    assert code == 0, err
    assert (run / "snapshots" / "engine-99.json").exists()  # left alone, never opened to read


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_stream_data_file_or_spec_that_is_a_fifo_is_refused(tmp_path, capsys, fmt):
    from evocl.errors import StreamError
    from evocl.streams import load_stream

    os.mkfifo(tmp_path / f"data.{fmt}")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"source: {{format: {fmt}, path: data.{fmt}}}\n")
    with pytest.raises(StreamError, match=f"data.{fmt}.*FIFO"):
        load_stream(str(spec))
    os.mkfifo(tmp_path / "fifo-spec.yaml")
    with pytest.raises(StreamError, match="fifo-spec.yaml.*FIFO"):
        load_stream(str(tmp_path / "fifo-spec.yaml"))
    _refused(capsys, "search", "--run-dir", tmp_path / "r", "--stream", spec, "--budget", "1",
             "--quiet", name=f"data.{fmt}", rule="FIFO")
    assert not (tmp_path / "r").exists()


def test_train_config_that_is_a_fifo_is_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "best.yaml")
    _refused(capsys, "train", "--config", tmp_path / "best.yaml", "--out", tmp_path / "t",
             name="best.yaml", rule="FIFO")


# ------------------------------------------ output folders: new, empty, or evocl's own
def test_report_refuses_a_folder_evocl_did_not_write_unless_forced(run, tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_bytes(OUTSIDE)
    (out / "notes.txt").write_bytes(OUTSIDE)
    line = _refused(capsys, "report", run, "--out", out, name=str(out), rule="did not write")
    assert "--force" in line and (out / "index.html").read_bytes() == OUTSIDE
    code, _, err = cli(capsys, "report", run, "--out", out, "--force")
    assert code == 0, err
    assert b"<html" in (out / "index.html").read_bytes()
    assert (out / "notes.txt").read_bytes() == OUTSIDE           # not evocl's: never removed
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert "index.html" in listed and "notes.txt" not in listed
    # evocl's own folder now: written again without --force, the user's file left alone
    assert cli(capsys, "report", run, "--out", out)[0] == 0
    assert (out / "notes.txt").read_bytes() == OUTSIDE


def test_an_evocl_folder_never_replaces_a_file_it_did_not_write(run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli(capsys, "report", run, "--out", out)[0] == 0
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].remove("pareto.png")       # as if the user had put their own there
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "pareto.png").write_bytes(OUTSIDE)
    _refused(capsys, "report", run, "--out", out, name="pareto.png", rule="did not write")
    assert (out / "pareto.png").read_bytes() == OUTSIDE


def test_compare_and_export_folders_follow_the_same_rule(base_run, run, tmp_path, capsys):
    for args in (("compare", base_run, run), ("export", run, "--format", "yaml"),
                 ("export", run, "--format", "json", "--select", "pareto")):
        out = tmp_path / f"out-{args[0]}-{len(args)}"
        out.mkdir()
        (out / "mine.txt").write_bytes(OUTSIDE)
        _refused(capsys, *args, "--out", out, name=str(out), rule="did not write")
        assert cli(capsys, *args, "--out", out, "--force")[0] == 0
        assert cli(capsys, *args, "--out", out)[0] == 0       # its own now
        assert (out / "mine.txt").read_bytes() == OUTSIDE and (out / MANIFEST).is_file()


def test_single_file_export_replaces_only_an_evocl_export(run, tmp_path, capsys):
    out = tmp_path / "best.yaml"
    assert cli(capsys, "export", run, "--out", out)[0] == 0
    assert cli(capsys, "export", run, "--out", out)[0] == 0   # an evocl export: replaced
    mine = tmp_path / "mine.yaml"
    mine.write_text("learning_rate: 0.1\n")
    _refused(capsys, "export", run, "--out", mine, name="mine.yaml", rule="not a file evocl wrote")
    assert mine.read_text() == "learning_rate: 0.1\n"
    assert cli(capsys, "export", run, "--out", mine, "--force")[0] == 0
    link = tmp_path / "link.yaml"
    link.symlink_to(out)
    _refused(capsys, "export", run, "--out", link, "--force", name="link.yaml")


def test_optuna_export_refuses_a_file_that_is_no_optuna_storage(run, tmp_path, capsys):
    notes = tmp_path / "notes.log"
    notes.write_bytes(OUTSIDE)
    _refused(capsys, "export", run, "--format", "optuna", "--out", notes, name="notes.log",
             rule="not an Optuna storage")
    assert notes.read_bytes() == OUTSIDE
    assert cli(capsys, "export", run, "--format", "optuna", "--out", tmp_path / "s.db")[0] == 0


def test_train_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "t"
    out.mkdir()
    (out / "mine.txt").write_bytes(OUTSIDE)
    (tmp_path / "c.yaml").write_text("lr: 0.001\n")
    _refused(capsys, "train", "--config", tmp_path / "c.yaml", "--out", out, name=str(out),
             rule="did not write")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


# ------------------------------------------------------------------ the primitives
def test_box_primitives(tmp_path):
    box = Box(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    assert box.read_bytes("d/f") == b"x" and box.check("d", "dir") and box.check("d/f")
    (tmp_path / "ln").symlink_to(tmp_path / "d")
    for call in (lambda: box.read_bytes("ln/f"), lambda: box.write_atomic("ln/g", b"y"),
                 lambda: box.unlink("ln/f"), lambda: box.makedirs("ln/e"),
                 lambda: box.check("ln", "dir"), lambda: box.read_bytes("../x")):
        with pytest.raises(UnsafePathError):
            call()
    assert not (tmp_path / "d" / "g").exists() and (tmp_path / "d" / "f").exists()
    box.write_atomic("d/h", b"z")
    assert (tmp_path / "d" / "h").read_bytes() == b"z"
    assert box.read_bytes("nope", missing_ok=True) is None and box.lstat("no/pe") is None
    os.mkfifo(tmp_path / "p")
    with pytest.raises(UnsafePathError, match="FIFO"):
        read_bytes(tmp_path / "p")
    with pytest.raises(UnsafePathError, match="FIFO"):
        box.open("p", "ab")   # opened for writing, nobody reading: ENXIO, not a hang
    with pytest.raises(UnsafePathError, match="FIFO"):
        box.write_atomic("p", b"")


def test_output_folder_created_lazily_and_undone(tmp_path):
    folder = OutputFolder(tmp_path / "o" / "p", "train")
    assert not (tmp_path / "o").exists()
    folder.write("sub/a.json", b"{}")
    assert json.loads((tmp_path / "o" / "p" / MANIFEST).read_text())["files"] == ["sub/a.json"]
    folder.remove_written()
    assert not (tmp_path / "o" / "p").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OutputFolder(tmp_path / "empty-ok", "report").write("index.html", "<html>")
    OutputFolder(tmp_path / "empty-ok", "report").write("index.html", "<html>")  # its own
    with pytest.raises(UserError, match="`evocl train` never overwrites"):  # train never overwrites
        OutputFolder(tmp_path / "empty-ok", "train", own_ok=False)
    OutputFolder(tmp_path / "empty-ok", "train", own_ok=False, force=True)
