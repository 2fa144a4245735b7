"""Conversations in generative streams: parsing rules (one line, exit 2, nothing created),
assistant-turn spans from the chat template (tiny-lm's = SmolLM2's, one without a system turn,
none at all), truncation, held-out targets; generation-scored metrics and retention on tiny-lm."""

import json
from pathlib import Path

import pytest

from evocl.errors import StreamError
from evocl.streams import load_stream
from evocl.streams.conversation import (
    ConversationError,
    TemplateError,
    encode_conversations,
    parse_turns,
    render,
)

DATA = Path(__file__).parent / "data" / "chat"
TWO_TURNS = (("user", "Hi there."), ("assistant", "Hello!"), ("user", "Your name?"),
             ("assistant", "I am evocl."))
NO_SYSTEM = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    from evocl.cl import load_backbone

    return load_backbone("tiny-lm").tokenizer


def _spec(tmp_path: Path, lines: list, extra: str = "") -> Path:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = tmp_path / "s.yaml"
    spec.write_text(f"scenario: generative\nsource: d.jsonl\nretention: none\n{extra}")
    return spec


GOOD = {"task": "a", "messages": [{"role": "user", "content": "q"},
                                  {"role": "assistant", "content": "a"}]}


@pytest.mark.parametrize("record, field, rule", [
    ({"task": "a", "messages": [{"role": "user", "content": "q"}]}, "messages",
     "no assistant turn"),
    ({"task": "a", "messages": [{"role": "user", "content": "q"},
                                {"role": "assistant", "content": "a"},
                                {"role": "user", "content": "q2"}]}, "messages[2].role",
     "ends on a user turn"),
    ({"task": "a", "messages": [{"role": "system", "content": "s"},
                                {"role": "user", "content": "q"}]}, "messages", "no assistant"),
    ({"task": "a", "messages": [{"role": "bot", "content": "q"}]}, "messages[0].role",
     "unknown role 'bot'"),
    ({"task": "a", "messages": [{"role": "user", "content": "  "},
                                {"role": "assistant", "content": "a"}]}, "messages[0].content",
     "empty content"),
    ({"task": "a", "messages": [{"role": "user", "content": ["q"]},
                                {"role": "assistant", "content": "a"}]}, "messages[0].content",
     "expected a string, got list"),
    ({"task": "a", "messages": []}, "messages", "non-empty list"),
    ({"task": "a", "messages": [{"role": "assistant", "content": "a"}]}, "messages[0].role",
     "first turn after the system turn must be a user turn"),
    ({"task": "a", "conversations": [{"from": "human", "value": "q"},
                                     {"from": "robot", "value": "a"}]}, "conversations[1].from",
     "unknown role 'robot'"),
    ({"task": "a", "messages": [{"role": "user", "content": "q"},
                                {"role": "assistant", "content": "a"}], "prompt": "p"},
     "prompt", "one or the other"),
])
def test_bad_conversation_records_name_file_line_and_field(tmp_path, record, field, rule):
    spec = _spec(tmp_path, [GOOD, GOOD | {"task": "b"}, record])
    with pytest.raises(StreamError) as err:
        load_stream(str(spec))
    line = str(err.value)
    assert f"d.jsonl:3: {field}: " in line and rule in line and "\n" not in line


def test_a_bad_record_exits_2_and_creates_no_run(tmp_path, capsys):
    from evocl.cli import main

    spec = _spec(tmp_path, [GOOD, {"task": "b", "messages": [{"role": "user", "content": "q"}]}])
    run = tmp_path / "run"
    code = main(["search", "--stream", str(spec), "--backbone", "tiny-lm", "--run-dir", str(run),
                 "--budget", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not run.exists()
    assert len(err) == 1 and "d.jsonl:2: messages: no assistant turn" in err[0]


def test_sharegpt_and_messages_give_the_same_turns():
    sg = parse_turns([{"from": "system", "value": "s"}, {"from": "human", "value": "q"},
                      {"from": "gpt", "value": "a"}], "conversations", sharegpt=True)
    assert sg == parse_turns([{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                              {"role": "assistant", "content": "a"}])
    with pytest.raises(ConversationError):
        parse_turns([{"role": "user", "content": "q"}])
    assert parse_turns([{"role": "user", "content": "q"}], open_end=True) == (("user", "q"),)


@pytest.mark.parametrize("template", ["smollm2", "no-system", "none"])
def test_each_assistant_turn_is_found_and_its_prompt_is_the_generation_prompt(tokenizer, template):
    import copy

    tok = copy.deepcopy(tokenizer)
    if template == "no-system":
        tok.chat_template = NO_SYSTEM
    elif template == "none":
        tok.chat_template = None
    enc = encode_conversations(tok, [TWO_TURNS])[0]
    assert len(enc.spans) == 2 and enc.prompt_end == enc.spans[1][0]
    for (s, e), (_, answer) in zip(enc.spans, TWO_TURNS[1::2]):
        text = tok.decode(enc.ids[s:e])
        assert text.startswith(answer) and text.endswith(tok.eos_token)
    if template != "none":  # the ids before each turn are the template's generation prompt
        for k, (s, _) in zip((1, 3), enc.spans):
            head = tok(render(tok, TWO_TURNS[:k], True), add_special_tokens=False)["input_ids"]
            assert enc.ids[:s] == list(head)
        assert "system" in tok.decode(enc.ids) if template == "smollm2" else \
            "system" not in tok.decode(enc.ids)
    else:  # without a template, a one-exchange conversation is the pair format
        pair = encode_conversations(tok, [TWO_TURNS[:2]])[0]
        assert pair.ids == list(tok("Hi there.\n")["input_ids"]) + \
            list(tok("Hello!", add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]


def test_a_template_that_rewrites_earlier_turns_is_refused(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)  # drops earlier assistant answers, as some reasoning templates do
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
                         "<|im_start|>assistant\n...<|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}"
                         "\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(TemplateError, match="renders earlier turns differently"):
        encode_conversations(tok, [TWO_TURNS])


def test_truncation_keeps_the_last_answer_and_held_out_rows_score_it_only(tokenizer):
    from evocl.streams.lm_tokens import encode_split
    from evocl.streams.types import GenerativeSplit

    long = (("user", "word " * 80), ("assistant", "first answer"), ("user", "and now?"),
            ("assistant", "the last answer"))
    split = GenerativeSplit(("and now?",), ("the last answer",), (long,))
    full = encode_conversations(tokenizer, [long])[0]
    for held_out in (False, True):
        ids, mask, tgt, rows = encode_split(split, tokenizer, 48, held_out)
        n = int(mask[0].sum())
        assert n == 48 and list(ids[0, :n][-len(full.ids[full.spans[1][0]:full.spans[1][1]]):]) \
            == full.ids[full.spans[1][0]:full.spans[1][1]]  # the last answer whole, at the end
        targets = tokenizer.decode([int(i) for i, t in zip(ids[0], tgt[0]) if t])
        kept = tokenizer.decode(ids[0, :n])
        assert kept.count("word") < 80 and "first answer" in kept  # the earliest turn was cut
        # training rows learn every answer left; held-out rows are scored on the last one
        want = "the last answer" if held_out else "first answer<|im_end|>the last answer"
        assert targets == want + "<|im_end|>"


def test_text_metrics():
    from evocl.cl.text_metrics import exact_match, normalize_answer, rouge_l

    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("Paris.", "paris") == 1.0 and exact_match("an apple", "Apple") == 1.0
    assert exact_match("Paris France", "Paris") == 0.0
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # LCS "cat sat mat" (stemmed: cats -> cat): P = 3/5, R = 3/4
    assert rouge_l("cats sat on a mat", "the cat sat mat") == pytest.approx(2 / (5 / 3 + 4 / 3))
    assert rouge_l("", "") == 1.0 and rouge_l("", "word") == 0.0


def test_spec_metrics_retention_and_option_overrides():
    from evocl.streams.retention import apply_options

    s = load_stream(str(DATA / "chat.yaml"))
    assert [(t.name, t.metric) for t in s.tasks] == [("capitals", "exact_match"),
                                                     ("sums", "rougeL"), ("colors", "rougeL")]
    assert all(len(t.train.turns(0)) >= 4 for t in s.tasks)  # 2+ assistant turns
    assert s.retention.name == "general" and s.retention.metric == "rougeL"
    o = apply_options(s, task_metric="token_accuracy", retention="none")
    assert {t.metric for t in o.tasks} == {"token_accuracy"} and o.retention is None
    assert o.fingerprint != s.fingerprint
    p = apply_options(s, retention=str(DATA / "prompts.jsonl"))
    assert p.retention.metric == "agreement" and p.retention.split.responses == (None, None)
    with pytest.raises(StreamError, match="only agreement scores them"):
        apply_options(p, retention_metric="rougeL")
    with pytest.raises(StreamError, match="prompts.jsonl:1: record: no reference answer"):
        apply_options(s, retention=str(DATA / "prompts.jsonl"), retention_metric="rougeL")
    assert load_stream("chat").retention.name == "bbc-headlines"  # the built-in default


@pytest.fixture(scope="module")
def tiny_lm():
    from evocl.cl import load_backbone

    return load_backbone("tiny-lm")


def test_generation_scored_tasks_and_retention_on_tiny_lm(tiny_lm, one_torch_thread):
    from evocl.cl import evaluate

    cfg = {"lr": 3e-2, "steps_per_task": 2, "batch_size": 4}
    r = evaluate(cfg, load_stream(str(DATA / "chat.yaml")), tiny_lm, 0, device="cpu",
                 max_length=64, max_new_tokens=8)
    assert r.ok, r.error
    m = r.metrics
    assert m["metric"] == "mixed" and m["task_metrics"] == ["exact_match", "rougeL", "rougeL"]
    R = m["accuracy_matrix"]
    assert len(R) == 3 and all(0.0 <= v <= 1.0 for row in R for v in row)
    assert len(m["matrices"]["val_token_accuracy"]) == 4  # the token pass rides along
    ret = m["retention"]
    assert ret["set"] == "general" and ret["metric"] == "rougeL" and len(ret["scores"]) == 4
    assert r.objectives["retention_drop"] >= 0.0 and "retention" in r.objectives
    assert m["timings"]["generation"] > 0.0 and m["timings"]["token_scoring"] > 0.0
    # prompts only: agreement with the untrained model's answers, 1 before training
    p = evaluate(cfg, load_stream(str(DATA / "chat.yaml")), tiny_lm, 0, device="cpu",
                 max_length=64, max_new_tokens=8, retention=str(DATA / "prompts.jsonl"),
                 task_metric="token_accuracy")
    assert p.ok, p.error
    assert p.metrics["retention"]["metric"] == "agreement"
    assert p.metrics["retention"]["scores"][0] == 1.0
    assert "generation" in p.metrics["timings"] and p.metrics["metric"] == "token_accuracy"


def test_gradient_checkpointing_and_chunked_losses_change_nothing(tiny_lm, one_torch_thread,
                                                                   monkeypatch):
    from evocl.cl import evaluate
    from evocl.cl.learners import causal_lm

    cfg = {"lr": 3e-2, "steps_per_task": 3, "batch_size": 4, "distill": True}
    stream = load_stream(str(DATA / "chat.yaml"))
    kw = dict(device="cpu", max_length=64, retention="none", task_metric="token_accuracy")
    base = evaluate(cfg, stream, tiny_lm, 0, **kw)
    ckpt = evaluate(cfg, stream, tiny_lm, 0, gradient_checkpointing=True, **kw)
    monkeypatch.setattr(causal_lm, "LOSS_CHUNK", 7)  # every loss and KD term in chunks
    chunked = evaluate(cfg, stream, tiny_lm, 0, **kw)
    for other in (ckpt, chunked):
        assert other.ok, other.error
        assert other.metrics["final_task_loss"] == pytest.approx(base.metrics["final_task_loss"],
                                                                 rel=1e-4)
        assert other.objectives["acc"] == pytest.approx(base.objectives["acc"], abs=1e-3)


def test_group_by_length_sorts_rows_within_groups():
    import numpy as np

    from evocl.cl.train import _TaskSampler

    lengths = np.arange(100)[::-1] % 37
    s = _TaskSampler(np.arange(100), np.random.default_rng(0), lengths, group=20)
    order = s.take(100)
    assert sorted(order.tolist()) == list(range(100))
    for k in range(0, 100, 20):
        part = lengths[order[k:k + 20]]
        assert list(part) == sorted(part, reverse=True)
