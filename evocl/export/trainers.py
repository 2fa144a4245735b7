"""Exports for the trainers LLM builders run: TRL, axolotl, LLaMA-Factory (``--format
trl|axolotl|llamafactory``), each from one mapping of evocl's parameters.

Every export is a folder: the trainer's configuration, the stream's training rows as JSONL in
the trainer's format (``data/<k>-<task>.jsonl``, one file per task, in stream order), and
``NOTES.md``: what has no setting in that trainer (EWC, distillation, A-GEM, MER, FGM; replay
where the trainer cannot mix datasets) and what to do about it. evocl trains the tasks one
after another, ``steps_per_task`` optimizer steps each, keeping the adapter: so the axolotl
and LLaMA-Factory exports are one config per task (``task-<k>-<name>.yaml``), each to run
after the previous one from its adapter, and the TRL export gives one ``SFTConfig`` (and one
``DPOConfig`` when a task holds preference pairs) to apply per task.

    LoRA (peft LoraConfig, as the evaluator builds it)   r, lora_alpha, lora_dropout,
                                                         target_modules, layers_to_transform
    lr / steps_per_task / batch_size / weight_decay       learning_rate / max_steps /
    / warmup_ratio                                        per-device batch / weight_decay /
                                                          warmup_steps (of a task's steps)
    dpo_beta                                             DPO beta (TRL, axolotl ``rl_beta``,
                                                         LLaMA-Factory ``pref_beta``)
    replay (ratio)                                       LLaMA-Factory: the task's dataset
                                                         interleaved with earlier tasks'
                                                         (``interleave_probs`` 1-ratio, ratio);
                                                         axolotl / TRL: notes only

The replay rows are all earlier tasks' training rows (evocl's buffer keeps
``replay_buffer_per_class`` of them per task: the notes say so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evocl.records import Candidate, Result

LOSS_NOTES = {
    "ewc": "EWC (a quadratic penalty towards the previous task's adapter, weighted by the "
           "Fisher): no setting; add the penalty to the loss (a custom Trainer.compute_loss) or "
           "drop it",
    "distill": "distillation from the previous task's model: no setting; add a KL term "
               "against a frozen copy of the previous adapter or drop it",
    "agem": "A-GEM (gradient projection against a memory of earlier tasks): no setting; a "
            "custom optimizer step or drop it",
    "mer": "MER (Reptile meta-updates over replayed batches): no setting; drop it (replay "
           "alone is the nearest)",
    "adversarial": "FGM (adversarial embedding perturbation): no setting; drop it",
}


def _stream_and_params(view: Any, cand: Candidate) -> tuple[Any, Any]:
    from evocl.cl.params import resolve
    from evocl.streams import load_stream

    seed = int(view.config.evaluator_options.get("stream_seed", 0))  # as the evaluator loads it
    return load_stream(view.config.stream, seed=seed), resolve(cand.config)


def _lora(view: Any, cand: Candidate) -> dict[str, Any]:
    from evocl.export.document import lora_config_for

    d = lora_config_for(cand.config, view.config.backbone).to_dict()
    return {k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in d.items()}


def _files(stream: Any) -> list[tuple[str, Any]]:
    return [(f"data/{t.index}-{t.name}.jsonl", t) for t in stream.tasks]


def _messages(turns: Any) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


def _trl_row(split: Any, i: int) -> dict[str, Any]:
    """A TRL row: conversational prompt-completion, preference (explicit prompt) or text."""
    turns = split.turns(i)
    if turns is None:
        return {"text": split.prompts[i]}
    prompt, answer = _messages(turns[:-1]), _messages(turns[-1:])
    if split.is_preference(i):
        return {"prompt": prompt, "chosen": answer,
                "rejected": [{"role": "assistant", "content": split.rejected[i]}]}
    if len(turns) > 2:  # a conversation: every assistant turn is a target (as in evocl)
        return {"messages": _messages(turns)}
    return {"prompt": prompt, "completion": answer}


def _jsonl(rows: list[dict[str, Any]]) -> str:
    import json

    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _write_data(out: Path, stream: Any, row_of: Any) -> list[Path]:
    from evocl.export.document import _atomic_text

    return [_atomic_text(out / name, _jsonl([row_of(t.train, i) for i in range(len(t.train))]))
            for name, t in _files(stream)]


def _notes(p: Any, trainer: str, replay_mapped: bool) -> str:
    from evocl.cl.strategies import strategy_classes

    lines = [f"# What of this evocl configuration {trainer} has no setting for", "",
             f"- tasks: evocl trains the stream's tasks in order, {p.steps_per_task} optimizer "
             "steps each, keeping the adapter between tasks: run one training per task, in "
             "order, each from the previous one's adapter.",
             "- learning rate: evocl restarts the warm-up and linear decay at every task, as a "
             "fresh run per task does."]
    active = [cls.name for cls in strategy_classes() if cls.active(p)]
    if "replay" in active:
        lines.append(f"- replay (ratio {p.replay_ratio:.3g}, {p.replay_buffer_per_class} rows per "
                     f"task, {p.replay_policy}): " + (
                         "mapped to dataset mixing (earlier tasks' rows interleaved with "
                         "interleave_probs); evocl's buffer holds only "
                         f"{p.replay_buffer_per_class} rows per earlier task, the mix here uses "
                         "all of them" if replay_mapped else
                         "no mixing ratio in this trainer; concatenate earlier tasks' data "
                         "files to each task's, or drop it"))
    lines += [f"- {LOSS_NOTES[n]}." for n in active if n in LOSS_NOTES]
    if len(lines) == 4 and "replay" not in active:
        lines.append("- no continual-learning strategy is on: nothing else is lost.")
    return "\n".join(lines) + "\n"


def _pref_tasks(stream: Any) -> list[int]:
    from evocl.streams.preference import PREFERENCE_METRIC

    return [t.index for t in stream.tasks if t.metric == PREFERENCE_METRIC]


# ------------------------------------------------------------------------------------ TRL
def trl_configs(p: Any, seed: int, preference: bool, max_length: int) -> dict[str, dict]:
    """``SFTConfig`` (and ``DPOConfig``) keyword arguments for one task's training."""
    common = {"output_dir": "evocl-trl", "learning_rate": p.lr, "max_steps": p.steps_per_task,
              "per_device_train_batch_size": p.batch_size, "weight_decay": p.weight_decay,
              "warmup_steps": int(round(p.warmup_ratio * p.steps_per_task)),
              "lr_scheduler_type": "linear", "max_grad_norm": 1.0, "optim": "adamw_torch",
              "seed": seed, "max_length": max_length, "report_to": "none"}
    out = {"sft_config.json": {**common, "completion_only_loss": True}}
    if preference:
        out["dpo_config.json"] = {**common, "beta": p.dpo_beta, "loss_type": ["sigmoid"],
                                  "precompute_ref_log_probs": True}
    return out


def write_trl(view: Any, cand: Candidate, res: Result, out: Path) -> list[Path]:
    from evocl.export.document import _atomic_text, _json, evocl_document

    stream, p = _stream_and_params(view, cand)
    max_length = int(view.config.evaluator_options.get("max_length", 64))
    prefs = _pref_tasks(stream)
    written = [_json(out / name, doc) for name, doc in
               trl_configs(p, cand.seed, bool(prefs), max_length).items()]
    written.append(_json(out / "lora_config.json", _lora(view, cand)))
    written += _write_data(out, stream, _trl_row)
    plan = [{"task": t.name, "data": name,
             "trainer": "DPOTrainer + dpo_config.json" if t.index in prefs
             else "SFTTrainer + sft_config.json"} for name, t in _files(stream)]
    written.append(_json(out / "tasks.json", {"tasks": plan, "evocl": evocl_document(view, cand,
                                                                                   res)}))
    written.append(_atomic_text(out / "NOTES.md", _notes(p, "TRL", False) + (
        "- a preference task's reference: evocl's is the model at the task's start; with a "
        "PEFT model TRL's DPOTrainer uses a frozen copy of the adapter it is given (the "
        "previous task's) - the same.\n" if prefs else "")))
    return written


# -------------------------------------------------------------------------------- axolotl
def write_axolotl(view: Any, cand: Candidate, res: Result, out: Path) -> list[Path]:
    from evocl.export.document import _atomic_text

    stream, p = _stream_and_params(view, cand)
    lora = _lora(view, cand)
    prefs = _pref_tasks(stream)

    def row(split: Any, i: int) -> dict[str, Any]:  # chat_template reads {"messages": [...]}
        turns = split.turns(i)
        if turns is None:
            return {"text": split.prompts[i]}
        return _trl_row(split, i) if split.is_preference(i) else {"messages": _messages(turns)}

    written = _write_data(out, stream, row)
    files = _files(stream)
    for k, (name, t) in enumerate(files):
        pref = t.index in prefs
        cfg: dict[str, Any] = {
            "base_model": view.config.backbone,
            "adapter": "lora", "lora_r": lora["r"], "lora_alpha": lora["lora_alpha"],
            "lora_dropout": lora["lora_dropout"],
            "lora_target_modules": list(lora["target_modules"]),
            "learning_rate": p.lr, "max_steps": p.steps_per_task,
            "micro_batch_size": p.batch_size, "gradient_accumulation_steps": 1,
            "weight_decay": p.weight_decay,
            "warmup_steps": int(round(p.warmup_ratio * p.steps_per_task)),
            "lr_scheduler": "linear", "optimizer": "adamw_torch", "max_grad_norm": 1.0,
            "seed": cand.seed, "sequence_len": int(view.config.evaluator_options.get(
                "max_length", 64)),
            "datasets": [{"path": name, "ds_type": "json", "type": "chat_template.default"
                          if pref else "chat_template",
                          **({} if pref else {"field_messages": "messages"})}],
            "output_dir": f"out/task-{k}",
        }
        if lora.get("layers_to_transform") is not None:
            cfg["peft_layers_to_transform"] = list(lora["layers_to_transform"])
        if pref:
            cfg.update({"rl": "dpo", "rl_beta": p.dpo_beta})  # axolotl >= 0.9 (dpo_beta: deprecated)
        if k > 0:
            cfg["lora_model_dir"] = f"out/task-{k - 1}"
        written.append(_atomic_text(out / f"task-{k}-{t.name}.yaml",
                                    yaml.safe_dump(cfg, sort_keys=False)))
    written.append(_atomic_text(out / "NOTES.md", _notes(p, "axolotl", False)))
    return written


# -------------------------------------------------------------------------- LLaMA-Factory
def write_llamafactory(view: Any, cand: Candidate, res: Result, out: Path) -> list[Path]:
    from evocl.export.document import _atomic_text, _json

    stream, p = _stream_and_params(view, cand)
    lora = _lora(view, cand)
    prefs = _pref_tasks(stream)

    def row(split: Any, i: int) -> dict[str, Any]:
        turns = split.turns(i)
        if turns is None:
            return {"messages": [{"role": "assistant", "content": split.prompts[i]}]}
        if split.is_preference(i):
            return {"messages": _messages(turns[:-1]),
                    "chosen": {"role": "assistant", "content": turns[-1][1]},
                    "rejected": {"role": "assistant", "content": split.rejected[i]}}
        return {"messages": _messages(turns)}

    written = _write_data(out, stream, row)
    files = _files(stream)
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
            "assistant_tag": "assistant", "system_tag": "system"}
    info = {}
    for name, t in files:
        pref = t.index in prefs
        cols = {"messages": "messages", **({"chosen": "chosen", "rejected": "rejected"}
                                           if pref else {})}
        info[f"evocl_{t.index}_{t.name}"] = {"file_name": Path(name).name, "formatting": "sharegpt",
                                             "ranking": pref, "columns": cols, "tags": tags}
    written.append(_json(out / "data" / "dataset_info.json", info))
    names = list(info)
    for k, (_, t) in enumerate(files):
        pref = t.index in prefs
        datasets = [names[k]]
        cfg: dict[str, Any] = {
            "model_name_or_path": view.config.backbone,
            "stage": "dpo" if pref else "sft", "do_train": True,
            "finetuning_type": "lora", "lora_rank": lora["r"], "lora_alpha": lora["lora_alpha"],
            "lora_dropout": lora["lora_dropout"], "lora_target": ",".join(lora["target_modules"]),
            "learning_rate": p.lr, "max_steps": p.steps_per_task,
            "per_device_train_batch_size": p.batch_size, "gradient_accumulation_steps": 1,
            "weight_decay": p.weight_decay,
            "warmup_steps": int(round(p.warmup_ratio * p.steps_per_task)),
            "lr_scheduler_type": "linear", "max_grad_norm": 1.0, "seed": cand.seed,
            "cutoff_len": int(view.config.evaluator_options.get("max_length", 64)),
            "dataset_dir": "data", "template": "default",
            "output_dir": f"out/task-{k}",
        }
        earlier = [names[j] for j in range(k) if (files[j][1].index in prefs) == pref]
        if p.replay and p.replay_ratio > 0 and earlier:
            datasets += earlier
            share = p.replay_ratio / len(earlier)
            cfg["mix_strategy"] = "interleave_under"
            cfg["interleave_probs"] = ",".join(f"{x:.4g}" for x in
                                               [1 - p.replay_ratio] + [share] * len(earlier))
        cfg["dataset"] = ",".join(datasets)
        if pref:
            cfg.update({"pref_beta": p.dpo_beta, "pref_loss": "sigmoid"})
        if k > 0:
            cfg["adapter_name_or_path"] = f"out/task-{k - 1}"
        written.append(_atomic_text(out / f"task-{k}-{t.name}.yaml",
                                    yaml.safe_dump(cfg, sort_keys=False)))
    notes = _notes(p, "LLaMA-Factory", True)
    if lora.get("layers_to_transform") is not None:
        notes += (f"- LoRA on layers {list(lora['layers_to_transform'])} only: LLaMA-Factory's "
                  "lora_target names modules, not layers; it adapts every layer.\n")
    if prefs and p.replay:
        notes += ("- a replayed pair and a supervised row cannot share a stage (sft or dpo): "
                  "replay mixes only earlier tasks of the same kind.\n")
    written.append(_atomic_text(out / "NOTES.md", notes))
    return written
