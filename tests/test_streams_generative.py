"""Generative streams: spec loading, task order, seeded splits, target masks, truncation, the
token cache, one-line errors, and the built-in chat stream."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from evocl.errors import StreamError
from evocl.streams import (GENERATIVE, GenerativeSplit, TokenizedGenerativeSplit,
                           clear_memory_cache, encode_prompt, list_streams, load_stream,
                           tokenize_stream)
from evocl.streams.lm_tokens import fit_pair, format_rule

TASKS = ("greet", "math", "geo")


def _pairs(n=20):
    rows = []
    for t in TASKS:
        for i in range(n):
            rows.append({"prompt": f"{t} question number {i}?", "response": f"{t} answer {i}.",
                         "task": t})
    return rows


def _spec(tmp_path, rows, extra="", fmt="jsonl", name="gen"):
    data = tmp_path / f"{name}.{fmt}"
    if fmt == "jsonl":
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import csv
        keys = sorted({k for r in rows for k in r})
        with open(data, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(rows)
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\nscenario: generative\nsource: {{format: {fmt}, path: {data.name}}}\n"
                    + extra)
    return spec


@pytest.fixture(scope="module")
def tokenizer():
    from evocl.cl.backbone import load_backbone

    return load_backbone("tiny-lm").tokenizer


def test_spec_loads_pairs_in_first_appearance_or_spec_order(tmp_path):
    s = load_stream(_spec(tmp_path, _pairs()))
    assert s.scenario == GENERATIVE and s.class_names == () and s.generative
    assert [t.name for t in s.tasks] == list(TASKS) and all(t.classes == () for t in s.tasks)
    for t in s.tasks:
        assert isinstance(t.train, GenerativeSplit)
        assert (len(t.train), len(t.val), len(t.test)) == (14, 3, 3)
        assert all(p.startswith(t.name) and r.startswith(t.name)
                   for w in ("train", "val", "test") for p, r in
                   zip(t.split(w).prompts, t.split(w).responses))
        rows = {t.split(w).record(i)["prompt"] for w in ("train", "val", "test")
                for i in range(len(t.split(w)))}
        assert len(rows) == 20  # disjoint splits covering the task
    ordered = load_stream(_spec(tmp_path, _pairs(), "tasks: [geo, greet]\n", name="ordered"))
    assert [t.name for t in ordered.tasks] == ["geo", "greet"]  # tasks not listed are left out


def test_splits_are_deterministic_by_seed_and_capped_per_task(tmp_path):
    spec = _spec(tmp_path, _pairs(40), "max_per_task: 20\nsplits: {val: 0.1, test: 0.2}\n")
    a, b, c = load_stream(spec, seed=0), load_stream(spec, seed=0), load_stream(spec, seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.tasks[0].train.prompts == b.tasks[0].train.prompts
    assert a.tasks[0].train.prompts != c.tasks[0].train.prompts
    assert [(len(t.train), len(t.val), len(t.test)) for t in a.tasks] == [(14, 2, 4)] * 3
    capped = load_stream(spec, seed=0, max_train_per_class=5, max_eval_per_class=1)
    assert (len(capped.tasks[0].train), len(capped.tasks[0].val)) == (5, 1)


def test_text_rows_csv_and_explicit_splits(tmp_path):
    rows = [{"text": f"domain sentence {i} about {t}", "task": t,
             "split": ("test" if i < 2 else "val" if i < 4 else "train")}
            for t in ("a", "b") for i in range(10)]
    s = load_stream(_spec(tmp_path, rows, fmt="csv"))
    assert [(len(t.train), len(t.val), len(t.test)) for t in s.tasks] == [(6, 2, 2)] * 2
    assert s.tasks[0].train.responses == (None,) * 6
    assert s.tasks[0].test.record(0) == {"text": s.tasks[0].test.prompts[0]}


def _decode(tok, ids):
    return tok.decode([int(i) for i in ids])


def test_chat_template_masks_target_the_response_and_end_of_turn_only(tmp_path, tokenizer):
    s = load_stream(_spec(tmp_path, _pairs()))
    tok = tokenize_stream(s, tokenizer, 96, disk_cache=False)
    assert tok.rule == format_rule(tokenizer) and tok.rule.startswith("chat:")
    for task, ttask in zip(s.tasks, tok.tasks):
        assert ttask.classes == ()
        for which in ("train", "val", "test"):
            part, split = ttask.split(which), task.split(which)
            assert isinstance(part, TokenizedGenerativeSplit) and not hasattr(part, "labels")
            assert part.input_ids.shape == part.attention_mask.shape == part.target_mask.shape
            assert list(part.rows) == list(range(len(split)))
            assert not part.target_mask[:, 0].any()
            ids, mask, target = part.batch([1, 0])
            assert ids.shape == mask.shape == target.shape
            assert ids.shape[1] == int(part.attention_mask[:2].sum(axis=1).max())
            assert np.array_equal(target[1], part.target_mask[0, : ids.shape[1]])
            assert not (part.target_mask & (1 - part.attention_mask)).any()
            for k, j in enumerate(part.rows):
                ids, target = part.input_ids[k], part.target_mask[k].astype(bool)
                real = part.attention_mask[k].astype(bool)
                assert _decode(tokenizer, ids[target]) == split.responses[j] + tokenizer.eos_token
                prompt_ids = ids[real & ~target]
                assert list(prompt_ids) == encode_prompt(tokenizer, split.prompts[j])
                assert split.prompts[j] in _decode(tokenizer, prompt_ids)
                first = int(np.argmax(target))
                assert target[first:real.sum()].all()  # the response is one contiguous run


def test_plain_format_without_a_chat_template(tmp_path, tokenizer):
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    s = load_stream(_spec(tmp_path, _pairs(5)))
    tok = tokenize_stream(s, plain, 64, disk_cache=False)
    assert tok.rule.startswith("plain") and tok.rule != format_rule(tokenizer)
    part, split = tok.tasks[0].train, s.tasks[0].train
    ids, target = part.input_ids[0], part.target_mask[0].astype(bool)
    resp = plain(split.responses[0], add_special_tokens=False)["input_ids"]
    assert list(ids[target]) == resp + [plain.eos_token_id]
    assert list(ids[~target & part.attention_mask[0].astype(bool)]) == plain(split.prompts[0] + "\n")["input_ids"]


def test_text_rows_target_every_token_but_the_first_and_one_token_rows_are_dropped(tmp_path, tokenizer):
    rows = [{"text": f"a longer domain text number {i}", "task": "d"} for i in range(12)]
    rows += [{"text": "hello", "task": "d"}]  # one token: no target
    s = load_stream(_spec(tmp_path, rows), seed=0)
    split = next(s.tasks[0].split(w) for w in ("train", "val", "test") if "hello" in s.tasks[0].split(w).prompts)
    which = next(w for w in ("train", "val", "test") if s.tasks[0].split(w) is split)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok = tokenize_stream(s, tokenizer, 64, disk_cache=False)
    assert any("no target token left" in str(w.message) and which in str(w.message) for w in caught)
    part = tok.tasks[0].split(which)
    assert len(part) == len(split) - 1 and split.prompts.index("hello") not in part.rows
    for k in range(len(part)):
        n = int(part.attention_mask[k].sum())
        assert part.target_mask[k, 0] == 0 and part.target_mask[k, 1:n].all()
        assert _decode(tokenizer, part.input_ids[k, :n]) == split.prompts[part.rows[k]]


def test_truncation_keeps_the_response_and_cuts_the_prompt_from_the_left():
    head, tail = list(range(100, 140)), list(range(10))
    ids, start = fit_pair(head, tail, 32)
    assert len(ids) == 32 and ids[start:] == tail and ids[:start] == head[-22:]
    ids, start = fit_pair(head, list(range(50)), 32)  # the response alone does not fit
    assert start == 8 and ids[:8] == head[-8:] and ids[8:] == list(range(24))
    ids, start = fit_pair([1, 2], list(range(50)), 16)  # a short prompt stays whole
    assert start == 2 and ids == [1, 2] + list(range(14))
    assert fit_pair(head[:3], tail, 32) == (head[:3] + tail, 3)


def test_truncated_rows_in_a_tokenized_stream(tmp_path, tokenizer):
    rows = [{"prompt": "please " * 80 + f"question {i}?", "response": f"short answer {i}.",
             "task": "t"} for i in range(10)]
    s = load_stream(_spec(tmp_path, rows))
    part = tokenize_stream(s, tokenizer, 40, disk_cache=False).tasks[0].train
    split = s.tasks[0].train
    assert part.input_ids.shape[1] == 40
    for k, j in enumerate(part.rows):
        target = part.target_mask[k].astype(bool)
        assert _decode(tokenizer, part.input_ids[k][target]) == split.responses[j] + tokenizer.eos_token
        prompt = _decode(tokenizer, part.input_ids[k][~target & part.attention_mask[k].astype(bool)])
        question = split.prompts[j].split("please ")[-1]
        assert prompt.lstrip().startswith("please") and f"{question}<|im_end|>" in prompt  # cut on the left
        assert prompt.endswith("assistant\n")


def test_disk_cache_round_trip_and_key(tmp_path, tokenizer, monkeypatch):
    import copy

    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    s = load_stream(_spec(tmp_path, _pairs(8)))
    clear_memory_cache()
    first = tokenize_stream(s, tokenizer, 48)
    files = list((tmp_path / "cache" / "tokens").glob("*.npz"))
    assert len(files) == 1
    clear_memory_cache()
    again = tokenize_stream(s, tokenizer, 48)
    assert again is not first
    for a, b in zip(first.tasks, again.tasks):
        for w in ("train", "val", "test"):
            for f in ("input_ids", "attention_mask", "target_mask", "rows"):
                assert np.array_equal(getattr(a.split(w), f), getattr(b.split(w), f))
    with np.load(files[0], allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    other = copy.deepcopy(tokenizer)
    other.chat_template = other.chat_template.replace("helpful", "useful")
    assert tokenize_stream(s, other, 48).key != first.key  # the template is part of the key
    assert len(list((tmp_path / "cache" / "tokens").glob("*.npz"))) == 2


@pytest.mark.parametrize("rows, extra, needle", [
    ([{"prompt": "q", "task": "a"}], "", "field 'response' missing"),
    ([{"task": "a"}], "", "fields 'prompt' and 'response', or 'text', missing"),
    ([{"prompt": "q", "response": "  ", "task": "a"}], "", "field 'response' is empty"),
    ([{"prompt": "q", "response": "r"}], "", "field 'task' missing"),
    ([{"prompt": f"q{i}", "response": "r", "task": "a"} for i in range(5)], "tasks: [a, b]\n",
     "task 'b' has no records in the data"),
    ([{"text": "some text", "label": "pos", "task": "a"}], "",
     "a classification record (text and label) in a generative stream"),
    ([{"prompt": ["q"], "response": "r", "task": "a"}], "", "expected a string, got list"),
    ([{"prompt": f"q{i}", "response": "r", "task": "a"} for i in range(5)], "max_per_class: 3\n",
     "max_per_class: not a setting of a generative stream; use max_per_task"),
    ([{"prompt": "q1", "response": "r", "task": "a"}, {"prompt": "q2", "response": "r", "task": "a"}],
     "", "task 'a' has 2 example(s); needs >= 3"),
])
def test_bad_generative_records_are_one_line_errors(tmp_path, rows, extra, needle):
    with pytest.raises(StreamError) as err:
        load_stream(_spec(tmp_path, rows, extra))
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert "gen.jsonl" in str(err.value) or "gen.yaml" in str(err.value)


def test_csv_columns_and_the_wrong_kind_of_records(tmp_path):
    with pytest.raises(StreamError, match="a classification record .* in a generative stream"):
        load_stream(_spec(tmp_path, [{"text": "t", "label": "x", "task": "a"}], fmt="csv"))
    with pytest.raises(StreamError, match="column 'response' missing"):
        load_stream(_spec(tmp_path, [{"prompt": "q", "task": "a"}], fmt="csv", name="noresp"))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in _pairs(5)))
    spec = tmp_path / "cls.yaml"
    spec.write_text("scenario: class-incremental\nsource: {format: jsonl, path: pairs.jsonl}\n")
    with pytest.raises(StreamError) as err:
        load_stream(spec)
    assert "a generative record (prompt and response) in a classification stream: set " \
           "`scenario: generative`" in str(err.value) and "pairs.jsonl:1" in str(err.value)


def test_chat_stream_tasks_and_sizes():
    s = load_stream("chat")
    assert s.scenario == GENERATIVE and s.class_names == ()
    sizes = [(t.name, len(t.train), len(t.val), len(t.test)) for t in s.tasks]
    assert sizes == [("coding", 101, 21, 21), ("trivia", 322, 48, 48),
                     ("conversation", 126, 27, 27), ("feelings", 275, 48, 48)]
    assert load_stream("chat").fingerprint == s.fingerprint
    coding = s.tasks[0]
    assert any("```" in r for r in coding.train.responses)  # code keeps its lines
    entry = next(e for e in list_streams() if e["name"] == "chat")
    assert entry["tasks"] == ["coding", "trivia", "conversation", "feelings"]
    assert entry["task_sizes"][0] == {"train": 101, "val": 21, "test": 21}


def test_streams_registry_lists_every_builtin(capsys):
    from evocl.cli import main
    from evocl.registry import STREAMS
    from evocl.streams import builtins

    assert tuple(builtins()) == STREAMS.names() and "chat" in STREAMS
    assert main(["streams", "list"]) == 0
    out = capsys.readouterr().out
    assert "chat  (generative, 4 tasks" in out and "task 0: coding  (101/21/21)" in out
    assert main(["search", "--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # wrapped at hyphens
    assert all(name in flat for name in STREAMS.names())


@pytest.mark.parametrize("stream, backbone, needle", [
    ("chat", "tiny", "stream 'chat' is generative: it needs a causal-LM backbone"),
    ("synthetic", "tiny-lm", "'tiny-lm' is a causal language model"),
])
def test_search_refuses_a_stream_the_backbone_cannot_train(tmp_path, capsys, stream, backbone, needle):
    from evocl.cli import main

    root = Path(__file__).resolve().parent.parent
    run_dir = tmp_path / "run"
    code = main(["search", "--run-dir", str(run_dir), "--space", str(root / "search_spaces" / "tiny.yaml"),
                 "--stream", stream, "--backbone", backbone, "--quiet"])
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if "Warning" not in ln and ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0]
    assert not run_dir.exists()


class _Rows:
    """Enough of datasets.Dataset: ``features`` and row iteration."""

    def __init__(self, rows):
        self.rows = rows
        self.features = {k: object() for k in rows[0]}

    def __iter__(self):
        return iter([dict(r) for r in self.rows])


def test_hf_disk_generative_with_named_splits(tmp_path, monkeypatch):
    import sys
    import types

    def rows(which, n):
        return [{"question": f"{which} {t} q{i}", "answer": f"a{i}", "task": t}
                for t in ("x", "y") for i in range(n)]

    saved = {"train": _Rows(rows("train", 6)), "validation": _Rows(rows("val", 2)),
             "test": _Rows(rows("test", 2))}
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_from_disk=lambda p: saved))
    (tmp_path / "saved").mkdir()
    spec = tmp_path / "hf.yaml"
    spec.write_text("scenario: generative\nsource: {format: hf_disk, path: saved, "
                    "prompt_column: question, response_column: answer}\n")
    s = load_stream(spec)
    assert [t.name for t in s.tasks] == ["x", "y"]
    assert [len(s.tasks[0].split(w)) for w in ("train", "val", "test")] == [6, 2, 2]
    assert all(p.startswith("val x") for p in s.tasks[0].val.prompts)  # the "validation" split
    saved["train"] = _Rows([{"text": "t", "label": 1, "task": "x"}])
    with pytest.raises(StreamError, match="a classification record"):
        load_stream(spec.with_name("hf.yaml"))


def test_hostile_generative_files_are_one_line_errors(tmp_path):
    from evocl.streams.spec import MAX_RECORD_BYTES

    spec = _spec(tmp_path, _pairs(3))
    data = tmp_path / "gen.jsonl"
    data.write_bytes(data.read_bytes() + b'{"prompt": "caf\xe9", "response": "r", "task": "greet"}\n')
    with pytest.raises(StreamError, match="not UTF-8") as err:
        load_stream(spec)
    assert "gen.jsonl:10" in str(err.value) and "\n" not in str(err.value)
    data.write_text(json.dumps({"prompt": "x" * (MAX_RECORD_BYTES + 10), "response": "r",
                                "task": "greet"}) + "\n")
    with pytest.raises(StreamError, match="byte limit"):
        load_stream(spec)
