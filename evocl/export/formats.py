"""Writers for each export format. Each takes the run view and one (Candidate, Result) and
writes a file or a folder; the evocl document (yaml/json) is the one they all derive from
(``evocl.export.document``). The trainer formats (TRL, axolotl, LLaMA-Factory) are in
``evocl.export.trainers``; this module registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from evocl.errors import UserError
from evocl.export import trainers
from evocl.export.document import (_PLACE, EXPORT_FORMAT_VERSION, _atomic_bytes,  # noqa: F401
                                   _atomic_text, _json, evocl_document, lora_config_for)
from evocl.records import Candidate, Result

FORMATS = ("yaml", "json", "peft", "hf", "avalanche", "trl", "axolotl", "llamafactory", "optuna")
#: formats that write a folder
FOLDER_FORMATS = ("peft", "hf", "avalanche", "trl", "axolotl", "llamafactory")


def write_yaml(view, cand: Candidate, res: Result, out: Path) -> list[Path]:
    target = out if out.suffix in (".yaml", ".yml") else out / "config.yaml"
    return [_atomic_text(target, yaml.safe_dump(evocl_document(view, cand, res), sort_keys=False))]


def write_json(view, cand: Candidate, res: Result, out: Path) -> list[Path]:
    target = out if out.suffix == ".json" else out / "config.json"
    return [_json(target, evocl_document(view, cand, res))]


def write_peft(view, cand: Candidate, res: Result, out: Path) -> list[Path]:
    """``adapter_config.json`` through PEFT itself, from the same mapping the evaluator uses."""
    from evocl.storage.outdir import staging

    lora = lora_config_for(cand.config, view.config.backbone)
    if lora.task_type is None:  # an encoder: adapters + evocl's own head
        lora.task_type = "FEATURE_EXTRACTION"
        note = {"evocl": evocl_document(view, cand, res),
                "head": "evocl trains a linear head over mean-pooled hidden states beside the "
                        "adapters; it is not part of adapter_config.json (`evocl train` saves it "
                        "as head.safetensors)"}
    else:  # a causal LM: get_peft_model(AutoModelForCausalLM..., LoraConfig.from_pretrained(OUT))
        note = {"evocl": evocl_document(view, cand, res),
                "apply": "peft.get_peft_model(base_causal_lm, peft.LoraConfig.from_pretrained(OUT)); "
                         "the LM head stays frozen, no extra head"}
    with staging("evocl-peft-") as tmp:  # PEFT writes by path: into a private folder first
        lora.save_pretrained(str(tmp))
        saved = [_atomic_bytes(out / f.name, f.read_bytes()) for f in sorted(tmp.iterdir())
                 if f.is_file() and not f.is_symlink()]
    return saved + [_json(out / "evocl_provenance.json", note)]


def continual_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The continual-learning part of a configuration, grouped by strategy (off ones omitted);
    each strategy describes itself (`Strategy.describe`)."""
    from evocl.cl.params import resolve
    from evocl.cl.strategies import strategy_classes

    p = resolve(config)
    out: dict[str, Any] = {"steps_per_task": p.steps_per_task, "batch_size": p.batch_size}
    for cls in strategy_classes():
        if cls.active(p):
            out[_SETTING_NAMES.get(cls.name, cls.name)] = cls.describe(p)
    return out


#: section names of continual_learning.json that predate the strategy registry
_SETTING_NAMES = {"distill": "distillation"}


def write_hf(view, cand: Candidate, res: Result, out: Path) -> list[Path]:
    """``training_args.json`` that ``TrainingArguments(**json)`` accepts, and the CL settings."""
    from evocl.cl.params import resolve

    c = resolve(cand.config).to_dict()
    args = {
        "output_dir": "evocl-train",
        "learning_rate": c["lr"],
        "max_steps": c["steps_per_task"],
        "per_device_train_batch_size": c["batch_size"],
        "weight_decay": c["weight_decay"],
        "warmup_steps": int(round(c["warmup_ratio"] * c["steps_per_task"])),
        "lr_scheduler_type": "linear",
        "max_grad_norm": 1.0,
        "optim": "adamw_torch",
        "seed": cand.seed,
        "remove_unused_columns": False,
    }
    cl = {"note": "max_steps is per task: run one Trainer.train() per task, in stream order, "
                  "keeping the model between tasks; the strategies below are evocl's and need "
                  "their own loss terms or callbacks",
          "lora": lora_config_for(cand.config, view.config.backbone).to_dict(),
          **continual_settings(cand.config),
          "evocl": evocl_document(view, cand, res)}
    return [_json(out / "training_args.json", args), _json(out / "continual_learning.json", cl)]


def avalanche_spec(config: dict[str, Any], n_classes: int) -> dict[str, Any]:
    """Avalanche strategy and plugin keyword arguments matching an evocl configuration; each
    strategy gives its own plugin and notes (`Strategy.avalanche`)."""
    from evocl.cl.params import resolve
    from evocl.cl.strategies import strategy_classes

    p = resolve(config)
    plugins: list[dict[str, Any]] = []
    notes: list[str] = []
    train_mb = int(p.batch_size)
    for cls in strategy_classes():
        if not cls.active(p):
            continue
        spec = cls.avalanche(p, n_classes)
        if spec is None:
            continue
        plugins += spec.plugins
        notes += spec.notes
        if spec.train_mb is not None:
            train_mb = spec.train_mb
    return {
        "strategy": {"class": "avalanche.training.Naive",
                     "kwargs": {"train_mb_size": train_mb, "train_epochs": 1, "eval_mb_size": 64}},
        "optimizer": {"class": "torch.optim.AdamW",
                      "kwargs": {"lr": p.lr, "weight_decay": p.weight_decay}},
        "plugins": plugins,
        "steps_per_experience": p.steps_per_task,
        "notes": notes + ["Avalanche trains by epochs: evocl's steps_per_task is the number of "
                          "optimizer steps per experience; cap it with an iteration limit or size "
                          "train_epochs to match."],
    }


def write_avalanche(view, cand: Candidate, res: Result, out: Path) -> list[Path]:
    from evocl.streams import load_stream

    st = load_stream(view.config.stream, seed=0)
    # replay memories hold rows per class, per task on a generative stream
    spec = avalanche_spec(cand.config, len(st.class_names) or st.n_tasks)
    if not st.class_names:
        spec["notes"].insert(0, "generative stream: Avalanche has no causal-LM training loop; the "
                                "plugins and sizes (memories per task, not per class) are given "
                                "for reference")
    spec["evocl"] = evocl_document(view, cand, res)
    return [_json(out / "avalanche_strategy.json", spec)]


WRITERS: dict[str, Callable[..., list[Path]]] = {
    "yaml": write_yaml, "json": write_json, "peft": write_peft, "hf": write_hf,
    "avalanche": write_avalanche,
    "trl": trainers.write_trl, "axolotl": trainers.write_axolotl,
    "llamafactory": trainers.write_llamafactory,
}


def is_export(data: bytes) -> bool:
    """Whether ``data`` is an evocl export document (what `evocl export` may replace)."""
    from evocl.yamlsafe import load_text

    try:
        doc = load_text(data.decode("utf-8"), "<export>")
    except (UnicodeDecodeError, UserError):
        return False
    return isinstance(doc, dict) and "evocl_export" in doc


def write_selected(view, chosen: list[tuple[Candidate, Result]], fmt: str, out: Path, *,
                   force: bool = False) -> list[Path]:
    """One configuration goes to ``out``; several to ``out/candidate-<id>[.ext]``.

    A single file (``--out best.yaml``) may replace only an evocl export; a folder must be
    new, empty or evocl's own (``evocl.storage.outdir``), unless ``force``."""
    from evocl.storage.outdir import OutputFolder, write_file

    writer = WRITERS[fmt]
    if out.exists() and out.is_file() and (len(chosen) > 1 or fmt in FOLDER_FORMATS):
        raise UserError(f"{out} is a file; this export writes a folder", field="--out")
    run_dir = view.path
    if len(chosen) == 1 and fmt in ("yaml", "json") and out.suffix in (
            (".yaml", ".yml") if fmt == "yaml" else (".json",)):
        def place(path: Path, data: bytes) -> Path:
            return write_file(path, data, force=force, recognise=is_export, run_dir=run_dir)
    else:
        folder = OutputFolder(out, "export", force=force, run_dir=run_dir)

        def place(path: Path, data: bytes) -> Path:
            return folder.write(path.relative_to(out).as_posix(), data)
    token = _PLACE.set(place)
    try:
        written: list[Path] = []
        for cand, res in chosen:
            target = out
            if len(chosen) > 1:
                ext = {"yaml": ".yaml", "json": ".json"}.get(fmt, "")
                target = out / f"candidate-{cand.id}{ext}"
            written += writer(view, cand, res, target)
        return written
    finally:
        _PLACE.reset(token)
