"""Greedy answers of a causal LM to held-out prompts: batched, left-padded, KV cache, stop at the
end of the turn.

Prompts are sorted by length and cut into batches of ``batch_size`` (little padding); each
batch is left-padded (the attention mask and position ids skip the padding) and decoded with
transformers' ``generate`` (greedy: ``do_sample=False``, one beam, the KV cache on), stopping
a row at the first end-of-turn token: the tokenizer's eos (``<|im_end|>`` in ChatML
templates) or the model's own eos ids. Greedy decoding draws no random numbers, so scoring
by generation does not change the run's other results.

``budget(ref_lengths, cap)``: ``max_new_tokens`` of a round, the longest reference in tokens
(its end-of-turn token included) within ``cap``, so a round never decodes beyond what any
reference needs.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch

#: the cap on new tokens per answer when the options give none
DEFAULT_MAX_NEW_TOKENS = 64


def budget(ref_lengths: Sequence[int], cap: int | None) -> int:
    """New tokens per answer: the longest reference (module docstring), at least 1."""
    cap = DEFAULT_MAX_NEW_TOKENS if cap is None else int(cap)
    return max(1, min(cap, max(ref_lengths, default=cap)))


def stop_ids(tokenizer: Any, lm: Any) -> list[int]:
    """The ids that end a turn: the tokenizer's eos and the model's eos ids."""
    ids: list[int] = []
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(lm, "generation_config", None), "eos_token_id", None)):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


@torch.no_grad()
def greedy_answers(lm: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                   batch_size: int, device: torch.device, autocast: Any = None) -> list[str]:
    """The decoded greedy answer to each prompt (ids), special tokens dropped, stripped."""
    from transformers import GenerationConfig

    stops = stop_ids(tokenizer, lm)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops or [0])[0]
    config = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                              eos_token_id=stops or None, pad_token_id=pad, use_cache=True)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    was_training = lm.training
    lm.eval()
    try:
        for k in range(0, len(order), max(1, batch_size)):
            idx = order[k:k + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                n = len(prompts[i])
                ids[r, width - n:] = torch.as_tensor(list(prompts[i]), dtype=torch.long)
                mask[r, width - n:] = 1
            ids, mask = ids.to(device), mask.to(device)
            ctx = autocast() if autocast is not None else torch.autocast("cpu", enabled=False)
            with ctx, warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                        category=FutureWarning)
                gen = lm.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            for r, i in enumerate(idx):
                new = gen[r, width:].tolist()
                for j, tok in enumerate(new):
                    if tok in stops:
                        new = new[:j]
                        break
                out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    finally:
        lm.train(was_training)
    return out
