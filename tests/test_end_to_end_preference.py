"""A user's JSONL with two supervised tasks and one preference task through `evocl search`,
`export` (yaml, trl, axolotl, llamafactory) and `train` on tiny-lm: R holds the preference
task's accuracy; the TRL export loads in TRL; the axolotl and LLaMA-Factory exports are parsed
by those trainers' own config classes (installed apart: see docs/exports.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_end_to_end_lm import ROOT, env, evocl  # noqa: E402,F401  (one CLI runner, one env)

SPEC = ROOT / "tests" / "data" / "preference" / "feedback.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, env):
    tmp = tmp_path_factory.mktemp("pref")
    space = yaml.safe_load((ROOT / "search_spaces" / "cl_lm.yaml").read_text())
    space["name"] = "cl_pref_small"
    space["objectives"] = {"acc": {"direction": "maximize"},
                           "forgetting": {"direction": "minimize"}}
    space["parameters"]["steps_per_task"] = {"type": "int", "low": 2, "high": 4, "default": 3}
    space["parameters"]["batch_size"] = {"type": "categorical", "choices": [4], "default": 4}
    space["parameters"]["replay"] = {"type": "bool", "default": True}
    (tmp / "space.yaml").write_text(yaml.safe_dump(space))
    d = tmp / "run"
    res = evocl("search", "--stream", str(SPEC), "--backbone", "tiny-lm", "--space",
                str(tmp / "space.yaml"), "--budget", "2", "--population", "2", "--seed", "3",
                "--run-dir", str(d), "--quiet", "-o", "max_length=48", env=env)
    assert res.returncode == 0, res.stderr
    return d


def test_the_matrix_holds_the_preference_accuracy(run_dir):
    from evocl.storage import read_run

    view = read_run(run_dir)
    assert len(view.evaluations) == 2
    for _, r in view.evaluations:
        assert r.ok, r.error
        m = r.metrics
        assert m["task_metrics"] == ["token_accuracy", "token_accuracy", "preference_accuracy"]
        R = m["accuracy_matrix"]
        assert len(R) == 3 and R[0][2] == R[1][2] == 0.5  # before its task: chance
        assert 0.0 <= R[2][2] <= 1.0


def test_exports_load_in_their_trainers_and_train_runs(run_dir, tmp_path, env):
    out = tmp_path / "knee.yaml"
    assert evocl("export", str(run_dir), "--format", "yaml", "--out", str(out),
                 env=env).returncode == 0
    for fmt in ("trl", "axolotl", "llamafactory"):
        res = evocl("export", str(run_dir), "--format", fmt, "--out", str(tmp_path / fmt), env=env)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / fmt / "NOTES.md").is_file()
        assert len(list((tmp_path / fmt / "data").glob("*.jsonl"))) == 3

    import peft
    import trl

    t = tmp_path / "trl"
    cpu = {"use_cpu": True, "output_dir": str(tmp_path / "trl-out")}  # TRL's default is bf16
    sft = trl.SFTConfig(**{**json.loads((t / "sft_config.json").read_text()), **cpu})
    dpo = trl.DPOConfig(**{**json.loads((t / "dpo_config.json").read_text()), **cpu})
    lora_doc = json.loads((t / "lora_config.json").read_text())
    lora = peft.LoraConfig(**{k: v for k, v in lora_doc.items() if k in
                              peft.LoraConfig.__dataclass_fields__})
    doc = yaml.safe_load(out.read_text())
    assert dpo.beta == pytest.approx(doc["config"].get("dpo_beta", 0.1))
    assert sft.max_steps == doc["config"]["steps_per_task"] and lora.r == doc["config"]["lora_rank"]
    pref_rows = [json.loads(x) for x in (t / "data" / "2-polite.jsonl").read_text().splitlines()]
    assert all({"prompt", "chosen", "rejected"} <= set(r) for r in pref_rows)

    ax = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "axolotl").glob("task-*.yaml"))]
    assert [c.get("rl") for c in ax] == [None, None, "dpo"]
    for c in ax:
        assert c["adapter"] == "lora" and {"lora_r", "lora_alpha", "lora_dropout",
                                           "lora_target_modules", "learning_rate", "max_steps",
                                           "micro_batch_size", "datasets"} <= set(c)
    lf = [yaml.safe_load(p.read_text())
          for p in sorted((tmp_path / "llamafactory").glob("task-*.yaml"))]
    info = json.loads((tmp_path / "llamafactory" / "data" / "dataset_info.json").read_text())
    assert [c["stage"] for c in lf] == ["sft", "sft", "dpo"]
    for c in lf:
        assert c["finetuning_type"] == "lora" and all(d in info for d in c["dataset"].split(","))
    assert "interleave_probs" in lf[1] and lf[1]["mix_strategy"].startswith("interleave")
    probs = [float(x) for x in lf[1]["interleave_probs"].split(",")]
    assert len(probs) == len(lf[1]["dataset"].split(",")) and sum(probs) == pytest.approx(1.0)
    assert info["evocl_2_polite"]["ranking"] is True

    res = evocl("train", "--config", str(out), "--out", str(tmp_path / "trained"), env=env)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "trained" / "metrics.json").read_text())
    assert metrics["metrics"]["task_metrics"][2] == "preference_accuracy"
    samples = json.loads((tmp_path / "trained" / "samples.json").read_text())
    polite = [s for s in samples if s.get("task_name") == "polite"]
    assert polite and all({"before", "final", "rejected"} <= set(s) for s in polite), polite[0]


TRAINER_SCHEMAS = Path(os.environ.get("EVOCL_TRAINER_SCHEMAS",
                                      ROOT / ".venv" / "trainer-schemas"))


def test_axolotl_and_llamafactory_exports_pass_their_own_config_classes(run_dir, tmp_path, env):
    """axolotl's pydantic ``AxolotlInputConfig`` and LLaMA-Factory's ``get_train_args`` (its
    HfArgumentParser dataclasses) parse every task's file: no key unknown to them, every value
    of the right type, and the values evocl meant. They run in a subprocess with the folder
    ``make test`` installs them into (without their dependencies, which would replace evocl's
    torch / transformers / peft / trl pins) on the path."""
    if not (TRAINER_SCHEMAS / "axolotl").is_dir() or not (TRAINER_SCHEMAS / "llamafactory").is_dir():
        pytest.skip(f"axolotl / llamafactory not installed in {TRAINER_SCHEMAS} "
                    "(`make test` installs them there; EVOCL_TRAINER_SCHEMAS names another)")
    for fmt in ("axolotl", "llamafactory", "yaml"):
        out = tmp_path / (fmt if fmt != "yaml" else "knee.yaml")
        res = evocl("export", str(run_dir), "--format", fmt, "--out", str(out), env=env)
        assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((tmp_path / "knee.yaml").read_text())["config"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_trainer_schemas.py"), str(tmp_path / "axolotl"),
         str(tmp_path / "llamafactory")], capture_output=True, text=True, timeout=600,
        env={**env, "PYTHONPATH": f"{TRAINER_SCHEMAS}{os.pathsep}{ROOT}",
             "DISABLE_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    ax, lf = parsed["axolotl"], parsed["llamafactory"]
    assert [a["file"] for a in ax] == ["task-0-greet.yaml", "task-1-add.yaml", "task-2-polite.yaml"]
    for a in ax:
        assert a["unknown_keys"] == [], a  # axolotl drops unknown keys silently: checked here
        assert a["adapter"] == "lora" and a["lora_r"] == doc["lora_rank"]
        assert a["learning_rate"] == pytest.approx(doc["lr"])
        assert a["max_steps"] == doc["steps_per_task"] and a["micro_batch_size"] == 4
    assert [a["rl"] for a in ax] == [None, None, "dpo"]
    assert ax[2]["rl_beta"] == pytest.approx(doc.get("dpo_beta", 0.1))
    assert [x["stage"] for x in lf] == ["sft", "sft", "dpo"]
    for x in lf:
        assert x["finetuning_type"] == "lora" and x["lora_rank"] == doc["lora_rank"]
        assert x["max_steps"] == doc["steps_per_task"]
    assert lf[2]["pref_beta"] == pytest.approx(doc.get("dpo_beta", 0.1))
    assert lf[1]["dataset"] == ["evocl_1_add", "evocl_0_greet"]  # replay: earlier tasks mixed in
    assert sum(lf[1]["interleave_probs"]) == pytest.approx(1.0)
