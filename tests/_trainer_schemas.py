"""Run in a subprocess by tests/test_end_to_end_preference.py with the trainer-schemas folder
(``make test`` installs axolotl and LLaMA-Factory there without their dependencies) on
``sys.path``: validates evocl's axolotl and LLaMA-Factory exports with those packages' own
config classes and prints one JSON object of what they parsed.

    python tests/_trainer_schemas.py AXOLOTL_DIR LLAMAFACTORY_DIR
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import yaml


def axolotl(folder: Path) -> list[dict]:
    from axolotl.utils.schemas.config import AxolotlInputConfig

    fields = set()
    for name, f in AxolotlInputConfig.model_fields.items():
        fields |= {name, f.alias} - {None}
    out = []
    for path in sorted(folder.glob("task-*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        model = AxolotlInputConfig(**cfg)  # pydantic: wrong types and values raise
        out.append({"file": path.name, "unknown_keys": sorted(set(cfg) - fields),
                    "rl": model.rl.value if model.rl else None, "rl_beta": model.rl_beta,
                    "adapter": model.adapter, "lora_r": model.lora_r,
                    "lora_target_modules": model.lora_target_modules,
                    "learning_rate": model.learning_rate, "max_steps": model.max_steps,
                    "micro_batch_size": model.micro_batch_size,
                    "datasets": [d.path for d in model.datasets or []]})
    return out


def llamafactory(folder: Path) -> list[dict]:
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # its pins are not evocl's
    from llamafactory.hparams import get_train_args

    out = []
    cwd = os.getcwd()
    os.chdir(folder)  # dataset_dir and output_dir are relative to the export folder
    try:
        for path in sorted(Path(".").glob("task-*.yaml")):
            cfg = yaml.safe_load(path.read_text())
            # HfArgumentParser over its dataclasses: an unknown key or a bad value raises
            model, data, training, finetuning, _ = get_train_args(dict(cfg))
            out.append({"file": path.name, "stage": finetuning.stage,
                        "finetuning_type": finetuning.finetuning_type,
                        "lora_rank": finetuning.lora_rank, "lora_target": finetuning.lora_target,
                        "pref_beta": finetuning.pref_beta, "dataset": data.dataset,
                        "interleave_probs": data.interleave_probs,
                        "mix_strategy": data.mix_strategy,
                        "learning_rate": training.learning_rate,
                        "max_steps": training.max_steps,
                        "model_name_or_path": model.model_name_or_path})
    finally:
        os.chdir(cwd)
    return out


if __name__ == "__main__":
    with contextlib.redirect_stdout(io.StringIO()):  # their import-time chatter
        result = {"axolotl": axolotl(Path(sys.argv[1])),
                  "llamafactory": llamafactory(Path(sys.argv[2]))}
    print(json.dumps(result, default=str))
