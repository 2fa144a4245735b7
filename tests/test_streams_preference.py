"""Preference records in a generative stream: parsing, the task-kind rules, bad records (one
line naming file, line and field), tokens (chosen and rejected sequences, answer-only
targets)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evocl.errors import StreamError
from evocl.streams.spec import load_spec_stream

ROOT = Path(__file__).resolve().parent.parent
FEEDBACK = ROOT / "tests" / "data" / "preference" / "feedback.yaml"


def _stream(tmp_path, rows, extra=""):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "s.yaml"
    spec.write_text("scenario: generative\nsource: d.jsonl\nretention: none\n"
                    "splits: {val: 0.2, test: 0.2}\n" + extra)
    return load_spec_stream(spec, seed=0)


def _pairs(n=10, task="p"):
    return [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "task": task}
            for i in range(n)]


def test_the_feedback_stream_mixes_two_supervised_tasks_and_a_preference_task():
    s = load_spec_stream(FEEDBACK, seed=0)
    assert [t.name for t in s.tasks] == ["greet", "add", "polite"]
    assert [t.metric for t in s.tasks] == [None, None, "preference_accuracy"]
    pol = s.tasks[2].train
    assert all(pol.is_preference(i) for i in range(len(pol)))
    rec = [pol.record(i) for i in range(len(pol))]
    assert {"chosen", "rejected"} <= set(rec[0]) and any("messages" in r for r in rec)
    assert all(r["chosen"] != r["rejected"] for r in rec)
    assert not s.tasks[0].train.rejected  # supervised splits carry no rejected answers


def test_the_rejected_answer_is_part_of_the_fingerprint(tmp_path):
    a = _stream(tmp_path, _pairs())
    rows = _pairs()
    rows[0]["rejected"] = "another bad answer"
    assert _stream(tmp_path, rows).fingerprint != a.fingerprint


@pytest.mark.parametrize("change,field,rule", [
    ({"chosen": None}, "chosen", "'chosen' is missing"),
    ({"rejected": None}, "rejected", "'rejected' is missing"),
    ({"rejected": "good 3"}, "rejected", "chosen and rejected are the same answer"),
    ({"prompt": "  "}, "prompt", "empty prompt"),
    ({"chosen": ""}, "chosen", "empty answer"),
    ({"chosen": 3.5, "rejected": {"x": 1}}, "rejected", "expected a string, got dict"),
    ({"response": "r"}, "response", "not 'response'"),
    ({"prompt": None}, "prompt", "needs a 'prompt' or 'messages'"),
    ({"prompt": None, "messages": [{"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "a"}]},
     "messages[1].role", "end on a user turn"),
    ({"task": None}, "task", "missing"),
])
def test_a_bad_record_names_its_file_line_and_field(tmp_path, change, field, rule):
    rows = _pairs()
    rows[3] = {k: v for k, v in {**rows[3], **change}.items() if v is not None}
    with pytest.raises(StreamError) as exc:
        _stream(tmp_path, rows)
    msg = str(exc.value)
    assert f"d.jsonl:4: {field}:" in msg and rule in msg and "\n" not in msg


def test_a_task_holds_one_kind_of_record(tmp_path):
    rows = _pairs() + [{"prompt": "x", "response": "y", "task": "p"}]
    with pytest.raises(StreamError, match="mixes 10 preference records"):
        _stream(tmp_path, rows)
    sup = [{"prompt": f"x{i}", "response": "y", "task": "s"} for i in range(10)]
    with pytest.raises(StreamError, match="has no preference records"):
        _stream(tmp_path, sup, "tasks: [{name: s, metric: preference_accuracy}]\n")
    # a stream-wide metric is for the supervised tasks: the preference task keeps its own
    s = _stream(tmp_path, sup + _pairs(), "metric: rougeL\n")
    assert [t.metric for t in s.tasks] == ["rougeL", "preference_accuracy"]


def test_the_cli_refuses_a_bad_record_in_one_line_with_exit_2(tmp_path):
    rows = _pairs()
    rows[5]["rejected"] = rows[5]["chosen"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text("scenario: generative\nsource: d.jsonl\nretention: none\n")
    res = subprocess.run([sys.executable, "-m", "evocl.cli", "search", "--stream",
                          str(tmp_path / "s.yaml"), "--backbone", "tiny-lm", "--budget", "1",
                          "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "EVOCL_CACHE": str(tmp_path / "cache")}, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "d.jsonl:6: rejected: chosen and rejected are the same" in lines[0]


def test_tokens_of_a_pair_are_two_sequences_with_the_answer_as_target():
    from evocl.cl.backbone import load_backbone
    from evocl.streams.lm_tokens import encode_split

    tok = load_backbone("tiny-lm", seed=0).tokenizer
    s = load_spec_stream(FEEDBACK, seed=0)
    split = s.tasks[2].train
    ids, mask, tgt, rows, rids, rmask, rtgt, pref = encode_split(split, tok, 96)
    assert pref.tolist() == [1] * len(rows)
    for k, i in enumerate(rows):
        chosen = tok.decode(ids[k][tgt[k] == 1])
        rejected = tok.decode(rids[k][rtgt[k] == 1])
        assert chosen.startswith(split.responses[i]) and rejected.startswith(split.rejected[i])
        n, m = int(mask[k].sum()), int(rmask[k].sum())
        first, rfirst = int(tgt[k].argmax()), int(rtgt[k].argmax())
        assert ids[k][:first].tolist() == rids[k][:rfirst].tolist()  # the same prompt
        assert n > first and m > rfirst
