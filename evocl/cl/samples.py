"""Generated answers of a causal LM over a continual run: what was learned and what forgotten.

`SampleRecorder` is an ``on_task_model`` callback of `evocl.cl.evaluate`: for a few held-out
prompts of every task it records the model's greedy answer before training, right after the
prompt's own task, and at the end; for a few prompts of the stream's retention set (general
ability), before training and at the end (``task`` = "retention"). A conversation's prompt is
its history up to its last assistant turn. Greedy decoding draws no random numbers, so
recording samples does not change the run.
"""

from __future__ import annotations

from typing import Any

import torch

#: held-out prompts per task, new tokens per answer
PER_TASK = 3
MAX_NEW_TOKENS = 48


class SampleRecorder:
    """``recorder(t, model)`` after each task (t = -1: before training); ``recorder.samples``."""

    def __init__(self, stream: Any, tokenizer: Any, n_tasks: int, device: Any,
                 per_task: int = PER_TASK, max_new_tokens: int = MAX_NEW_TOKENS):
        from evocl.streams.lm_tokens import encode_prompt, encode_turns_prompt

        self.tokenizer, self.device, self.n_tasks = tokenizer, device, n_tasks
        self.max_new_tokens = max_new_tokens
        self.samples: list[dict[str, Any]] = []

        def add(task: Any, name: str, split: Any, i: int) -> None:
            rec = split.record(i)
            turns = split.turns(i)
            prompt = rec.get("prompt", rec.get("text", ""))
            if turns is None:
                ids = encode_prompt(tokenizer, prompt)
            else:
                ids = encode_turns_prompt(tokenizer, turns)
                head = turns[:-1] if turns[-1][0] == "assistant" else turns
                prompt = head[-1][1] if len(head) == 1 else [
                    {"role": r, "content": c} for r, c in head]
            self.samples.append({"task": task, "task_name": name, "prompt": prompt,
                                 "reference": split.responses[i], "ids": ids})
            if split.is_preference(i):  # a preference prompt: the reference is the chosen answer
                self.samples[-1]["rejected"] = split.rejected[i]

        for j, task in enumerate(stream.tasks[:n_tasks]):
            split = task.val if len(task.val) else task.test
            for i in range(min(per_task, len(split))):
                add(j, task.name, split, i)
        retention = getattr(stream, "retention", None)
        if retention is not None:
            for i in range(min(per_task, len(retention))):
                add("retention", retention.name, retention.split, i)

    def __call__(self, t: int, model: Any) -> None:
        for s in self.samples:
            if t == -1:
                s["before"] = self._generate(model, s["ids"])
            elif t == s["task"] and s["task"] != "retention":
                s["after_own_task"] = self._generate(model, s["ids"])
            if t == self.n_tasks - 1:
                s["final"] = self._generate(model, s["ids"])

    @torch.no_grad()
    def _generate(self, model: Any, ids: list[int]) -> str:
        lm = model.lm
        was_training = lm.training
        lm.eval()
        try:
            x = torch.tensor([ids], device=self.device)
            out = lm.generate(input_ids=x, attention_mask=torch.ones_like(x),
                              max_new_tokens=self.max_new_tokens, do_sample=False,
                              pad_token_id=self.tokenizer.pad_token_id)
        finally:
            lm.train(was_training)
        return self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()

    def to_json(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in s.items() if k != "ids"} for s in self.samples]
