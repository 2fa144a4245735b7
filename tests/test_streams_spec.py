"""User stream specs: JSONL / CSV sources, per-record tasks, and every one-line error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from evocl.errors import StreamError, UserError
from evocl.streams import Record, SplitRule, build_stream, load_stream


def _rows(labels: dict[str, str | None], n: int = 20) -> list[dict]:
    out = []
    for label, task in labels.items():
        for i in range(n):
            row = {"text": f"{label} example number {i}", "label": label}
            if task is not None:
                row["task"] = task
            out.append(row)
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _write_spec(folder: Path, text: str) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


def _error(spec: Path) -> str:
    with pytest.raises(StreamError) as info:
        load_stream(spec)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, UserError)
    return message


def test_jsonl_spec_with_relative_path(tmp_path):
    (tmp_path / "data").mkdir()
    _write_jsonl(tmp_path / "data" / "d.jsonl", _rows(dict.fromkeys("abcd")))
    spec = _write_spec(tmp_path, "name: mine\nscenario: class-incremental\n"
                       "source: {format: jsonl, path: data/d.jsonl}\n"
                       "tasks:\n  - [a, b]\n  - [c, d]\n")
    s = load_stream(str(spec), seed=0)
    assert s.name == "mine" and s.class_names == ("a", "b", "c", "d")
    assert [t.classes for t in s.tasks] == [(0, 1), (2, 3)]
    assert s.tasks[0].test.class_counts() == {0: 3, 1: 3}
    assert s.tasks[0].val.class_counts() == {0: 3, 1: 3}
    assert s.tasks[0].train.class_counts() == {0: 14, 1: 14}
    assert load_stream(spec, seed=0).fingerprint == s.fingerprint
    assert load_stream(spec, seed=5).fingerprint != s.fingerprint


def test_csv_spec_with_custom_columns_and_per_record_task(tmp_path):
    rows = _rows({"x": "t1", "y": "t1", "z": "t2", "w": "t2"})
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "category", "step"])
        for r in rows:
            writer.writerow([r["text"], r["label"], r["task"]])
    spec = _write_spec(tmp_path, "scenario: task-incremental\nsource:\n  format: csv\n"
                       "  path: d.csv\n  text_column: sentence\n  label_column: category\n"
                       "  task_column: step\nmax_per_class: 10\nsplits: {val: 0.2, test: 0.2}\n")
    s = load_stream(spec)
    assert s.name == "spec" and s.scenario == "task-incremental"
    assert [t.name for t in s.tasks] == ["t1", "t2"]
    assert s.task_class_names() == [["x", "y"], ["w", "z"]]
    assert s.tasks[0].train.class_counts() == {0: 6, 1: 6}
    assert s.tasks[0].test.class_counts() == {0: 2, 1: 2}


def test_explicit_split_field_is_kept(tmp_path):
    rows = []
    for label in "ab":
        for i, which in enumerate(["train"] * 6 + ["validation"] * 2 + ["test"] * 2):
            rows.append({"text": f"{label} {i}", "label": label, "split": which})
    _write_jsonl(tmp_path / "d.jsonl", rows)
    spec = _write_spec(tmp_path, "source: d.jsonl\ntasks: [[a, b]]\n")
    s = load_stream(spec)
    assert len(s.tasks[0].train) == 12 and len(s.tasks[0].val) == 4 and len(s.tasks[0].test) == 4


def test_domain_incremental_spec(tmp_path):
    rows = [{"text": f"{d} {lab} {i}", "label": lab, "task": d}
            for d in ("news", "forum") for lab in ("pos", "neg") for i in range(10)]
    _write_jsonl(tmp_path / "d.jsonl", rows)
    s = load_stream(_write_spec(tmp_path, "scenario: domain-incremental\nsource: d.jsonl\n"
                                "tasks: [forum, news]\n"))
    assert [t.name for t in s.tasks] == ["forum", "news"]
    assert s.tasks[0].classes == s.tasks[1].classes == (0, 1)


def _bad(tmp_path: Path, spec_text: str, rows: list[dict] | None = None) -> str:
    _write_jsonl(tmp_path / "d.jsonl", rows if rows is not None else _rows(dict.fromkeys("abcd")))
    return _error(_write_spec(tmp_path, spec_text))


@pytest.mark.parametrize("spec_text, expected", [
    ("source: d.jsonl\ntasks: [[a, b]]\nmax_per_clas: 5\n",
     "max_per_clas: unknown key; did you mean 'max_per_class'?"),
    ("source: {format: jsonl, pth: d.jsonl}\ntasks: [[a, b]]\n",
     "source.pth: unknown key; did you mean 'path'?"),
    ("source: {format: jsnl, path: d.jsonl}\ntasks: [[a, b]]\n", "did you mean 'jsonl'?"),
    ("scenario: class-incremantal\nsource: d.jsonl\ntasks: [[a, b]]\n",
     "scenario: unknown scenario"),
    ("source: d.jsonl\ntasks: [[a, b], []]\n", "tasks[1]: empty task"),
    ("source: d.jsonl\ntasks: [[a, b], [c]]\n", "tasks[1]: task has one class ('c')"),
    ("source: d.jsonl\ntasks: [[a, b], [c, nope]]\n", "tasks[1]: label 'nope' is absent"),
    ("source: d.jsonl\ntasks: [[a, b], [b, c]]\n", "need disjoint classes"),
    ("source: d.jsonl\ntasks: []\n", "tasks: empty stream"),
    ("source: d.jsonl\n", "tasks: no `tasks` list and some records have no task"),
    ("source: missing.jsonl\ntasks: [[a, b]]\n", "data file not found"),
    ("tasks: [[a, b]]\n", "source: required key missing"),
    ("source: d.jsonl\ntasks: [[a, b]]\nsplits: {val: 0.6, test: 0.5}\n",
     "splits: val + test must be < 1"),
])
def test_spec_errors_are_one_line(tmp_path, spec_text, expected):
    message = _bad(tmp_path, spec_text)
    assert expected in message
    assert str(tmp_path / "spec.yaml") in message


def test_missing_label_field_names_file_and_line(tmp_path):
    rows = _rows(dict.fromkeys("ab"))
    rows[3] = {"text": "no label here"}
    message = _bad(tmp_path, "source: d.jsonl\ntasks: [[a, b]]\n", rows)
    assert "d.jsonl:4: label: field 'label' missing" in message


def test_missing_csv_column(tmp_path):
    (tmp_path / "d.csv").write_text("text,lab\nhello,a\n", encoding="utf-8")
    message = _error(_write_spec(tmp_path, "source: d.csv\ntasks: [[a, b]]\n"))
    assert "d.csv: label_column: column 'label' missing" in message


def test_empty_data_file(tmp_path):
    assert "empty stream" in _bad(tmp_path, "source: d.jsonl\ntasks: [[a, b]]\n", rows=[])


def test_missing_spec_file(tmp_path):
    assert "spec file not found" in _error(tmp_path / "nope.yaml")


def test_test_label_never_seen_in_training(tmp_path):
    rows = [{"text": f"a {i}", "label": "a", "split": "train"} for i in range(4)]
    rows += [{"text": f"b {i}", "label": "b", "split": w}
             for i, w in enumerate(["train", "train", "test", "test"])]
    rows += [{"text": f"a val {i}", "label": "a", "split": "val"} for i in range(2)]
    rows += [{"text": "b val", "label": "b", "split": "val"}]
    rows += [{"text": f"c {i}", "label": "c", "split": "test"} for i in range(2)]
    message = _bad(tmp_path, "source: d.jsonl\ntasks: [[a, b, c]]\n", rows)
    assert "tasks[0]: label 'c' of the test split is never seen in training" in message


def test_class_too_small_to_split(tmp_path):
    rows = _rows(dict.fromkeys("ab"), n=2)
    assert "needs >= 3" in _bad(tmp_path, "source: d.jsonl\ntasks: [[a, b]]\n", rows)


def test_hf_disk_without_datasets_or_hf_offline(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "saved").mkdir()
    if importlib.util.find_spec("datasets") is None:
        message = _error(_write_spec(tmp_path, "source: {format: hf_disk, path: saved}\n"
                                     "tasks: [[a, b]]\n"))
        assert "pip install datasets" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _error(_write_spec(tmp_path, "source: hf:ag_news\ntasks: [[a, b]]\n"))
    assert "offline (HF_HUB_OFFLINE is set)" in message


def test_build_stream_directly_with_duplicates_dropped():
    recs = [Record(f"t{i % 12}", "a" if i % 2 else "b") for i in range(40)]
    s = build_stream("dup", "class-incremental", recs, seed=0, tasks=[["a", "b"]],
                     rule=SplitRule(val=0.2, test=0.2))
    assert sum(len(s.tasks[0].split(w)) for w in ("train", "val", "test")) == 12
    assert isinstance(s.tasks[0].train.labels, np.ndarray)


class _FakeLabel:
    names = ["neg", "pos"]


class _FakeDataset:
    """Enough of datasets.Dataset: ``features`` and row iteration."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.features = {"text": object(), "label": _FakeLabel(), "task": object()}

    def __iter__(self):
        return iter([dict(r) for r in self.rows])


def test_hf_disk_with_datasetdict_splits_and_classlabels(tmp_path, monkeypatch):
    import sys
    import types

    def split_rows(which: str, n: int) -> list[dict]:
        return [{"text": f"{which} {t} {lab} {i}", "label": lab, "task": t}
                for t in ("d1", "d2") for lab in (0, 1) for i in range(n)]

    saved = {"train": _FakeDataset(split_rows("train", 5)),
             "validation": _FakeDataset(split_rows("val", 2)),
             "test": _FakeDataset(split_rows("test", 2))}
    fake = types.SimpleNamespace(load_from_disk=lambda path: saved)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    (tmp_path / "saved").mkdir()
    s = load_stream(_write_spec(tmp_path, "scenario: domain-incremental\n"
                                "source: {format: hf_disk, path: saved}\n"))
    assert s.class_names == ("neg", "pos")
    assert [t.name for t in s.tasks] == ["d1", "d2"]
    assert [len(s.tasks[0].split(w)) for w in ("train", "val", "test")] == [10, 4, 4]
