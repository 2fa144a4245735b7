"""Configuration names, defaults and validation of the cl package."""

import pytest

from evocl.cl import DEFAULTS, KNOWN_PARAMETERS, resolve
from evocl.errors import UserError

CONTRACT = {"lora_rank", "lora_alpha_ratio", "lora_dropout", "lora_targets", "lora_layers",
            "lora_rank_schedule", "ewc", "ewc_lambda", "ewc_gamma", "replay",
            "replay_buffer_per_class", "replay_ratio", "replay_policy", "distill",
            "distill_temperature", "distill_alpha", "adversarial", "adv_epsilon", "lr",
            "steps_per_task", "batch_size", "weight_decay", "warmup_ratio",
            "agem", "agem_mem_per_class", "mer", "mer_beta", "mer_gamma", "dpo_beta"}


def test_known_parameters_match_the_contract() -> None:
    assert set(KNOWN_PARAMETERS) == CONTRACT
    assert set(DEFAULTS) == CONTRACT


def test_defaults_fill_absent_names() -> None:
    p = resolve({"lora_rank": 4, "ewc": True})
    assert p.lora_rank == 4 and p.ewc is True
    assert p.lr == DEFAULTS["lr"] and p.replay is False


def test_unknown_parameter_rejected_with_the_known_list() -> None:
    with pytest.raises(UserError) as err:
        resolve({"lora_rnak": 4})
    msg = str(err.value)
    assert "lora_rnak" in msg and "lora_rank" in msg and "\n" not in msg


@pytest.mark.parametrize("bad", [{"lora_rank": 0}, {"lora_rank": 2.5}, {"ewc": "yes"},
                                 {"lora_targets": "mlp"}, {"replay_ratio": 1.5},
                                 {"lr": float("nan")}, {"lr": 0.0}, {"batch_size": True}])
def test_bad_values_rejected(bad: dict) -> None:
    with pytest.raises(UserError):
        resolve(bad)


def test_integral_floats_and_int_bools_accepted() -> None:
    p = resolve({"lora_rank": 8.0, "replay": 1, "lr": 1})
    assert p.lora_rank == 8 and isinstance(p.lora_rank, int) and p.replay is True
    assert p.lr == 1.0


@pytest.mark.parametrize("space", ["cl_lora.yaml", "cl_lora_gpu.yaml", "cl_lm.yaml"])
def test_shipped_space_defaults_equal_the_strategies_defaults(space: str) -> None:
    """One source for each default: a shipped space states the evaluator's own default for
    every strategy and adapter parameter it names. The optimisation settings (lr, steps, batch)
    are a space's budget: the default space states the evaluator's, while the causal-LM and
    GPU spaces size their baseline for their hardware."""
    from pathlib import Path

    from evocl.cl.params import OPTIMISATION
    from evocl.space import load

    path = Path(__file__).parent.parent / "search_spaces" / space
    if not path.exists():
        pytest.skip(f"{space} not shipped")
    budget = {p.name for p in OPTIMISATION} if space != "cl_lora.yaml" else set()
    for p in load(str(path)).parameters:
        assert p.name in DEFAULTS, p.name
        if p.name not in budget:
            assert p.default == DEFAULTS[p.name], (space, p.name, p.default, DEFAULTS[p.name])


def test_parameter_names_need_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from evocl.cl import KNOWN_PARAMETERS, OBJECTIVES, DEFAULTS; "
            "from evocl.cl.strategies import strategy_classes; strategy_classes(); "
            "import evocl.runner, evocl.export; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
