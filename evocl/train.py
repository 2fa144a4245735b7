"""`evocl train`: one exported configuration on the full stream; adapters, head and metrics saved.

Proof that an export is usable: it reads the YAML/JSON that `evocl export --format yaml|json`
writes, trains with the same evaluator as the search (full validation and test splits, no
caps), and writes into OUT:

    adapter/adapter_model.safetensors, adapter/adapter_config.json   the LoRA adapters (PEFT)
    head.safetensors                                                  the linear head (encoders)
    labels.json                                                       class names of the head
    metrics.json                                                      objectives, accuracy matrix, test accuracy
    samples.json                                                      causal LMs: answers to held-out
                                                                      prompts before training, after
                                                                      their own task, at the end; and
                                                                      to retention prompts before / after

A causal LM's adapter loads with ``PeftModel.from_pretrained(base_model, OUT/adapter)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evocl.errors import EvaluationError, UserError
from evocl.storage.atomic import json_bytes
from evocl.storage.outdir import OutputFolder, staging
from evocl.yamlsafe import read_yaml


def read_export(path: str | os.PathLike) -> dict[str, Any]:
    """An evocl export document (YAML or JSON); UserError naming the file and field."""
    path = Path(path)
    doc = read_yaml(path, what="evocl export (YAML or JSON)")
    if not isinstance(doc, dict):
        raise UserError("expected a mapping (an `evocl export` document)", source=str(path))
    if "config" not in doc or not isinstance(doc["config"], dict):
        if "evocl_export" not in doc and all(isinstance(k, str) for k in doc):
            return {"config": doc}  # a bare configuration mapping is accepted too
        raise UserError("missing mapping `config`", source=str(path), field="config")
    return doc


def _field(doc: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise UserError(f"must be a mapping, got {type(value).__name__}", source=source, field=key)
    return value


def train_exported(config: str | os.PathLike, out: str | os.PathLike, *, stream: str | None = None,
                   backbone: str | None = None, device: str = "auto", seed: int | None = None,
                   force: bool = False) -> dict[str, Any]:
    """Train the exported configuration; return the headline metrics (acc, forgetting, bwt,
    test_acc_mean). Stream, backbone and seed default to the export's provenance.

    ``out`` must be new or empty unless ``force`` (``evocl.storage.outdir``: a trained
    adapter is never overwritten by default); it is created only once training has produced something, and what this train
    wrote is removed again when it fails: a failed train leaves nothing of its own.
    """
    from safetensors.torch import save_file

    from evocl.cl import evaluate, load_backbone
    from evocl.cl.names import Options
    from evocl.streams import load_stream

    src = str(config)
    doc = read_export(config)
    prov = _field(doc, "provenance", src)
    options = _field(doc, "evaluator_options", src)
    try:
        opts = Options.from_mapping({**options, "max_eval_per_task": None,
                                     "max_test_per_task": None})
    except UserError as e:
        raise UserError(e.rule, source=src, field=f"evaluator_options.{e.field}") from None
    stream_name = stream or prov.get("stream") or "default"
    backbone_name = backbone or prov.get("backbone") or "minilm"
    for name, value in (("provenance.stream", stream_name), ("provenance.backbone", backbone_name)):
        if not isinstance(value, str):
            raise UserError(f"must be a string, got {type(value).__name__}", source=src, field=name)
    train_seed = seed if seed is not None else _field(doc, "candidate", src).get("seed", 0)
    if isinstance(train_seed, bool) or not isinstance(train_seed, int) or not 0 <= train_seed < 2**63:
        raise UserError(f"must be an int in [0, 2**63), got {train_seed!r:.40}", source=src,
                        field="candidate.seed")
    folder = OutputFolder(out, "train", force=force, own_ok=False)  # refused before loading

    bk = load_backbone(backbone_name)
    st = load_stream(stream_name, seed=opts.stream_seed)

    causal = getattr(bk, "kind", "encoder") == "causal_lm"
    recorder = None
    if causal:
        from evocl.cl.evaluation import resolve_device
        from evocl.cl.samples import SampleRecorder
        from evocl.streams.retention import apply_options

        st = apply_options(st, task_metric=opts.task_metric, retention=opts.retention,
                           retention_metric=opts.retention_metric)
        recorder = SampleRecorder(st, bk.tokenizer, st.n_tasks, resolve_device(device))

    def save(model: Any) -> None:
        with staging("evocl-train-") as tmp:  # PEFT and safetensors write by path
            if causal:
                model.lm.save_pretrained(str(tmp / "adapter"))
            else:
                model.encoder.save_pretrained(str(tmp / "adapter"))
                head = {k: v.detach().cpu().contiguous()
                        for k, v in model.head.state_dict().items()}
                save_file(head, str(tmp / "head.safetensors"))
            folder.add_tree(tmp)

    try:
        try:
            result = evaluate(doc["config"], st, bk, train_seed, device=device,
                              options=opts.__class__.from_mapping(
                                  {**opts.to_dict(), "task_metric": None, "retention": None,
                                   "retention_metric": None}),
                              on_trained=save, on_task_model=recorder)
        except EvaluationError as exc:
            raise UserError(f"training failed: {exc.reason}", source=src) from None
        if causal:
            folder.write("samples.json", json_bytes(recorder.to_json()))  # type: ignore[union-attr]
        else:
            folder.write("labels.json", json_bytes({"class_names": list(st.class_names),
                                                    "scenario": st.scenario}))
        record = {"config": doc["config"], "stream": stream_name,
                  "stream_fingerprint": st.fingerprint, "backbone": backbone_name,
                  "seed": train_seed, **result.to_dict()}
        folder.write("metrics.json", json_bytes(record, allow_nan=True))
    except BaseException:
        folder.remove_written()
        raise
    o = result.objectives
    return {"acc": o["acc"], "forgetting": o["forgetting"], "bwt": o["bwt"],
            "test_acc_mean": result.metrics["test_acc"]["mean"],
            **{k: o[k] for k in ("perplexity", "retention", "retention_drop") if k in o}}
