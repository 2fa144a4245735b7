"""A tiny, strongly separable keyword stream for fast tests of the cl package (no files).

Each class owns a few distinctive words; a text is several of its class's words shuffled with
filler words. The tiny random backbone learns each task within a few dozen steps, so
forgetting, replay and EWC effects show in seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from evocl.streams import Split, Stream, Task

_WORDS = ("apple river mountain guitar window rocket garden silver thunder castle pepper "
          "violin desert island lantern marble ocean pencil rabbit saddle tiger velvet wagon "
          "yellow zebra anchor bridge candle dragon engine falcon glacier hammer jungle kettle "
          "ladder magnet needle orchid parrot quartz ribbon spider tunnel umbrella vessel whistle").split()
_FILLER = "the a of and with about some many this that".split()


def keyword_stream(n_tasks: int = 3, classes_per_task: int = 2, n_train: int = 32,
                   n_eval: int = 16, scenario: str = "class-incremental", seed: int = 0,
                   words_per_class: int = 3) -> Stream:
    """``n_train`` / ``n_eval`` are per class. Domain-incremental reuses the same class ids in
    every task (with task-specific keywords, so tasks differ)."""
    rng = np.random.default_rng(seed)
    n_ids = classes_per_task if scenario == "domain-incremental" else n_tasks * classes_per_task
    tasks = []
    for t in range(n_tasks):
        ids = list(range(classes_per_task)) if scenario == "domain-incremental" else \
            list(range(t * classes_per_task, (t + 1) * classes_per_task))
        splits = {}
        for which, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
            texts, labels = [], []
            for k, c in enumerate(ids):
                slot = (t * classes_per_task + k) * words_per_class
                keys = _WORDS[slot % len(_WORDS): slot % len(_WORDS) + words_per_class]
                for _ in range(n):
                    words = list(rng.choice(keys, 4)) + list(rng.choice(_FILLER, 2))
                    texts.append(" ".join(rng.permutation(words)))
                    labels.append(c)
            splits[which] = Split(tuple(texts), np.array(labels, dtype=np.int64))
        tasks.append(Task(t, f"task{t}", tuple(ids), **splits))
    names = tuple(f"class{c}" for c in range(n_ids))
    return Stream(f"keywords-{scenario}", scenario, names, tuple(tasks))


def memorize_lm_tensors(n_tasks: int = 3, rows_per_task: int = 24, vocab: int = 64,
                        prompt_len: int = 6, response_len: int = 4, seed: int = 0) -> Any:
    """A generative stream as tensors, no tokenizer: in task t every prompt (random tokens
    after a task marker) is answered by task t's own fixed response. A causal LM learns a task
    in a few dozen steps and forgets it when the next task's response takes over."""
    from evocl.cl.data import SplitTensors, StreamTensors

    rng = np.random.default_rng(seed)
    responses = [rng.integers(8, vocab, response_len) for _ in range(n_tasks)]

    def split(n: int) -> SplitTensors:
        width = 1 + prompt_len + response_len
        ids = np.zeros((n_tasks * n, width), dtype=np.int64)
        tgt = np.zeros_like(ids, dtype=np.bool_)
        for t in range(n_tasks):
            for i in range(n):
                r = t * n + i
                ids[r, 0] = 1 + t
                ids[r, 1:1 + prompt_len] = rng.integers(8, vocab, prompt_len)
                ids[r, 1 + prompt_len:] = responses[t]
                tgt[r, 1 + prompt_len:] = True
        mask = torch.ones(ids.shape, dtype=torch.int64)
        return SplitTensors(ids=torch.from_numpy(ids), mask=mask,
                            lengths=torch.full((len(ids),), width, dtype=torch.int64),
                            labels=torch.zeros(len(ids), dtype=torch.int64),
                            task=torch.arange(n_tasks).repeat_interleave(n),
                            offsets=tuple(t * n for t in range(n_tasks + 1)),
                            targets=torch.from_numpy(tgt))

    return StreamTensors(scenario="generative", n_classes=0, task_classes=((),) * n_tasks,
                         train=split(rows_per_task), val=split(8), test=split(8),
                         fingerprint=f"memorize-{n_tasks}-{seed}", max_length=16)


def tiny_llama(vocab: int = 64, seed: int = 0) -> Any:
    """A 2-layer random Llama as a causal-LM backbone (no tokenizer), for learner tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from evocl.cl.backbone import Backbone

    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bk = Backbone(name="tiny-llama", model=model, tokenizer=None, hidden_size=32, num_layers=2)
    object.__setattr__(bk, "kind", "causal_lm")
    return bk
