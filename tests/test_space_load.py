"""Loading and validating search-space YAML: shipped files, every malformed-space rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evocl.errors import SpaceError, UserError
from evocl.space import SearchSpace, check_file, check_text, load, loads

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"

ISSUE_EXAMPLE = """
parameters:
  lr:         {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
  steps:      {type: int, low: 10, high: 200, step: 10}
  rank:       {type: categorical, choices: [2, 4, 8, 16]}
  ewc:        {type: bool}
  ewc_lambda: {type: float, low: 0.01, high: 10000, log: true, when: {ewc: true}}
objectives:
  acc: maximize
  forgetting: minimize
constraints:
  trainable_params: {max: 2000000}
"""

CL_NAMES = [
    "lora_rank", "lora_alpha_ratio", "lora_dropout", "lora_targets", "lora_layers",
    "lora_rank_schedule", "ewc", "ewc_lambda", "ewc_gamma", "replay", "replay_buffer_per_class",
    "replay_ratio", "replay_policy", "distill", "distill_temperature", "distill_alpha",
    "adversarial", "adv_epsilon", "mer", "mer_beta", "mer_gamma", "agem", "agem_mem_per_class",
    "lr", "steps_per_task", "batch_size", "weight_decay", "warmup_ratio",
]


def test_issue_example_loads() -> None:
    space = loads(ISSUE_EXAMPLE)
    assert space.names == ["lr", "steps", "rank", "ewc", "ewc_lambda"]
    lr, steps, rank, ewc, lam = space.parameters
    assert (lr.type, lr.low, lr.high, lr.log) == ("float", 1e-5, 1e-2, True)
    assert (steps.type, steps.low, steps.high, steps.step) == ("int", 10, 200, 10)
    assert rank.choices == (2, 4, 8, 16)
    assert ewc.type == "bool"
    assert lam.when == {"ewc": (True,)}
    assert [(o.name, o.direction, o.ref) for o in space.objectives] == [
        ("acc", "maximize", None), ("forgetting", "minimize", None)]
    assert space.constraints[0].name == "trainable_params"
    assert space.constraints[0].max == 2_000_000


def test_describe_for_cli_table() -> None:
    space = loads(ISSUE_EXAMPLE)
    assert [p.describe_range() for p in space.parameters] == [
        "[1e-05, 0.01] log", "[10, 200] step 10", "{2, 4, 8, 16}", "{false, true}",
        "[0.01, 10000] log"]
    assert space.parameters[4].describe_condition() == "ewc = true"
    assert space.parameters[0].describe_condition() == ""


def test_cl_lora_shipped() -> None:
    path = SPACES / "cl_lora.yaml"
    assert check_file(path) == []
    space = load(path)
    assert sorted(space.names) == sorted(CL_NAMES)
    assert {o.name: (o.direction, o.ref) for o in space.objectives} == {
        "acc": ("maximize", 0.0), "forgetting": ("minimize", 1.0),
        "trainable_params": ("minimize", 2_000_000.0)}
    assert [(c.name, c.max) for c in space.constraints] == [("trainable_params", 2_000_000.0)]
    p = {q.name: q for q in space.parameters}
    assert p["lora_rank"].choices == (2, 4, 8, 16, 32, 64)
    assert p["lora_alpha_ratio"].choices == (0.5, 1, 2, 4)
    assert p["lora_targets"].choices == ("attention", "attention_mlp", "all_linear")
    assert (p["ewc_lambda"].low, p["ewc_lambda"].high, p["ewc_lambda"].log) == (0.01, 1e4, True)
    assert p["replay_buffer_per_class"].type == "int" and p["replay_buffer_per_class"].log
    assert (p["steps_per_task"].low, p["steps_per_task"].high, p["steps_per_task"].step) == (10, 30, 5)
    assert p["replay_policy"].when == {"replay": (True,)}
    assert p["adv_epsilon"].when == {"adversarial": (True,)}
    # the sequential fine-tuning baseline (every strategy off) is a valid configuration
    base = space.default_config()
    assert space.validate_config(base) == base
    assert not any(base[k] for k in ("ewc", "replay", "distill", "adversarial"))


def test_tiny_shipped() -> None:
    path = SPACES / "tiny.yaml"
    assert check_file(path) == []
    space = load(path)
    assert set(space.names) <= set(CL_NAMES)
    assert set(space.names) == {"lr", "steps_per_task", "lora_rank", "replay", "replay_ratio",
                                "ewc", "ewc_lambda"}
    assert [(o.name, o.direction) for o in space.objectives] == [
        ("acc", "maximize"), ("forgetting", "minimize")]


def test_long_form_objective_and_metadata() -> None:
    space = loads("name: s\ndescription: d\nparameters: {a: {type: bool}}\n"
                  "objectives: {acc: {direction: maximize, ref: 0.5}, f: minimize}\n")
    assert (space.name, space.description) == ("s", "d")
    assert space.objectives[0].ref == 0.5 and space.objectives[1].ref is None


def test_yaml12_floats_without_dot() -> None:
    space = loads("parameters: {lr: {type: float, low: 1e-5, high: 1E-2, log: true}}\n"
                  "objectives: {acc: maximize}\n")
    assert (space.parameters[0].low, space.parameters[0].high) == (1e-5, 1e-2)


# (yaml, field path expected in the message, words expected in the rule)
MALFORMED = [
    ("lr: {type: float, low: 1, high: 0.5}", "parameters.lr.low", "must be < high"),
    ("lr: {type: float, low: 0, high: 1, log: true}", "parameters.lr.low", "> 0 with log"),
    ("n: {type: int, low: 0, high: 8, log: true}", "parameters.n.low", "> 0 with log"),
    ("r: {type: categorical, choices: []}", "parameters.r.choices", "must not be empty"),
    ("r: {type: categorical, choices: [1, 2, 1.0]}", "parameters.r.choices[2]", "duplicate choice"),
    ("r: {type: categorical, choices: [a, b, a]}", "parameters.r.choices[2]", "duplicate choice 'a'"),
    ("lr: {type: float, low: 0, high: 1}\n  lr: {type: bool}", "parameters.lr", "duplicate key 'lr'"),
    ("a: {type: bool, when: {eww: true}}\n  ewc: {type: bool}", "parameters.a.when.eww",
     "unknown parameter 'eww'; did you mean 'ewc'?"),
    ("ewc: {type: bool}\n  l: {type: float, low: 0, high: 1, when: {ewc: 3}}",
     "parameters.l.when.ewc", "ewc cannot take 3"),
    ("r: {type: categorical, choices: [2, 4]}\n  l: {type: bool, when: {r: 8}}",
     "parameters.l.when.r", "r cannot take 8"),
    ("a: {type: bool, when: {b: true}}\n  b: {type: bool, when: {a: true}}",
     "parameters.a.when", "cycle"),
    ("a: {type: bool, when: {a: true}}", "parameters.a.when", "cycle"),
    ("lr: {type: float, low: 0, hgih: 1}", "parameters.lr.hgih",
     "unknown key 'hgih'; did you mean 'high'?"),
    ("lr: {type: float, low: '0.1', high: 1}", "parameters.lr.low", "must be a number, got a string"),
    ("lr: {type: float, low: abc, high: 1}", "parameters.lr.low", "must be a number"),
    ("n: {type: int, low: true, high: 5}", "parameters.n.low", "must be an int, got a bool"),
    ("n: {type: int, low: 1.5, high: 5}", "parameters.n.low", "must be an int"),
    ("n: {type: int, low: 10, high: 205, step: 10}", "parameters.n.step", "must divide"),
    ("n: {type: int, low: 1, high: 100, step: 3, log: true}", "parameters.n.step", "log"),
    ("n: {type: flaot, low: 0, high: 1}", "parameters.n.type", "did you mean 'float'?"),
    ("n: {low: 0, high: 1}", "parameters.n.type", "required"),
    ("n: {type: float, low: 0, high: 1, log: 'yes'}", "parameters.n.log", "true or false"),
    ("n: {type: int, low: 1, high: 5, default: 9}", "parameters.n.default", "must be in [1, 5]"),
    ("n: {type: bool, default: 1}", "parameters.n.default", "true or false"),
    ("n: 3", "parameters.n", "must be a mapping"),
]


@pytest.mark.parametrize("param_yaml,field,rule", MALFORMED)
def test_malformed_parameter(param_yaml: str, field: str, rule: str) -> None:
    text = f"parameters:\n  {param_yaml}\nobjectives: {{acc: maximize}}\n"
    with pytest.raises(SpaceError) as info:
        loads(text, source="bad.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("bad.yaml: ")
    assert f": {field}: " in msg, msg
    assert rule in msg, msg
    assert isinstance(info.value, UserError)
    assert info.value.problems and info.value.problems[0] == msg


MALFORMED_TOP = [
    ("parameters: {}\nobjectives: {acc: maximize}\n", "parameters", "at least one parameter"),
    ("objectives: {acc: maximize}\n", "parameters", "at least one parameter"),
    ("parameters: {a: {type: bool}}\n", "objectives", "at least one objective"),
    ("parameters: {a: {type: bool}}\nobjectives: {acc: maximise}\n", "objectives.acc.direction",
     "invalid direction 'maximise'; did you mean 'maximize'?"),
    ("parameters: {a: {type: bool}}\nobjectives: {acc: {direction: up}}\n",
     "objectives.acc.direction", "invalid direction 'up'"),
    ("parameters: {a: {type: bool}}\nobjectives: {acc: {direction: maximize, ref: zero}}\n",
     "objectives.acc.ref", "must be a number"),
    ("parameters: {a: {type: bool}}\nobjectives: {acc: maximize}\nconstraints: {p: {maxx: 3}}\n",
     "constraints.p.maxx", "did you mean 'max'?"),
    ("paramters: {a: {type: bool}}\nobjectives: {acc: maximize}\n", "paramters",
     "did you mean 'parameters'?"),
    ("parameters: {a: {type: bool}}\nobjectives: {acc: maximize}\nobjectives: {f: minimize}\n",
     "objectives", "duplicate key 'objectives' at line 3"),
]


@pytest.mark.parametrize("text,field,rule", MALFORMED_TOP)
def test_malformed_document(text: str, field: str, rule: str) -> None:
    with pytest.raises(SpaceError) as info:
        loads(text, source="bad.yaml")
    msg = str(info.value)
    assert "\n" not in msg and f"bad.yaml: {field}: " in msg and rule in msg, msg


@pytest.mark.parametrize("text,line", [
    ("parameters:\n  n: {type: bool\nobjectives: {acc: maximize}\n", 3),
    ("parameters:\n\tn: 1\n", 2),
    ("parameters: [a, b\n", 2),
])
def test_malformed_yaml_has_line_number(text: str, line: int) -> None:
    problems = check_text(text, "bad.yaml")
    assert len(problems) == 1
    assert problems[0].startswith(f"bad.yaml: line {line}, column ")
    assert "malformed YAML" in problems[0] and "\n" not in problems[0]


def test_not_a_mapping_and_empty() -> None:
    assert "must be a mapping" in check_text("- a\n- b\n")[0]
    assert "must be a mapping" in check_text("")[0]


def test_check_file_lists_all_problems(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("parameters:\n"
                    "  lr: {type: float, low: 1, high: 0.5}\n"
                    "  r: {type: categorical, choices: []}\n"
                    "  lr: {type: bool}\n"
                    "  x: {type: int, low: 0, hgih: 3}\n"
                    "objectives: {acc: best}\n")
    problems = check_file(path)
    text = "\n".join(problems)
    assert len(problems) >= 5, text
    assert all(p.startswith(f"{path}: ") and "\n" not in p for p in problems)
    for needle in ("parameters.lr: duplicate key", "parameters.lr.low", "parameters.r.choices",
                   "parameters.x.hgih", "objectives.acc.direction"):
        assert needle in text, text
    with pytest.raises(SpaceError) as info:
        load(path)
    assert info.value.problems == problems
    assert str(info.value) == problems[0]


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpaceError, match="nope.yaml: file not found"):
        load(missing)
    assert check_file(missing) == [f"{missing}: file not found"]


def test_to_dict_from_dict_roundtrip_and_fingerprint() -> None:
    space = load(SPACES / "cl_lora.yaml")
    d = space.to_dict()
    again = SearchSpace.from_dict(json.loads(json.dumps(d)))
    assert again == space
    assert again.fingerprint == space.fingerprint
    assert again.names == space.names
    other = loads(ISSUE_EXAMPLE)
    assert other.fingerprint != space.fingerprint
    assert len(space.fingerprint) == 16


def test_from_dict_programmatic_zdt() -> None:
    space = SearchSpace.from_dict({
        "parameters": {f"x{i}": {"type": "float", "low": 0, "high": 1} for i in range(30)},
        "objectives": {"f1": "minimize", "f2": "minimize"},
    })
    assert len(space) == 30 and space.names[0] == "x0" and space.names[-1] == "x29"
    assert space.parameters[0].low == 0.0 and isinstance(space.parameters[0].low, float)
    with pytest.raises(SpaceError, match="parameters.x.low"):
        SearchSpace.from_dict({"parameters": {"x": {"type": "float", "low": 2, "high": 1}},
                               "objectives": {"f": "minimize"}})


def test_space_is_immutable() -> None:
    space = loads(ISSUE_EXAMPLE)
    with pytest.raises(AttributeError):
        space.parameters = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        space.parameters[0].low = 3  # type: ignore[misc]


def test_topological_order_keeps_file_order() -> None:
    space = loads("parameters:\n"
                  "  child: {type: float, low: 0, high: 1, when: {mid: [a, b]}}\n"
                  "  z: {type: bool}\n"
                  "  mid: {type: categorical, choices: [a, b, c], when: {top: true}}\n"
                  "  top: {type: bool}\n"
                  "objectives: {acc: maximize}\n")
    names = space.names
    assert names.index("top") < names.index("mid") < names.index("child")
    assert names.index("z") < names.index("mid")
    assert space.param("child").describe_condition() == "mid in {a, b}"


def test_yaml12_booleans_and_merge_keys() -> None:
    space = loads("parameters:\n"
                  "  x: &base {type: float, low: 0, high: 1}\n"
                  "  y: {<<: *base, high: 2}\n"
                  "  c: {type: categorical, choices: [yes, no, on, true]}\n"
                  "objectives: {acc: maximize}\n")
    assert space.param("y").high == 2.0  # an explicit key overrides the merged one
    assert space.param("c").choices == ("yes", "no", "on", True)
    problems = check_text("parameters:\n  ewc: {type: bool}\n"
                          "  l: {type: float, low: 0, high: 1, when: {ewc: yes}}\n"
                          "objectives: {acc: maximize}\n")
    assert len(problems) == 1 and "parameters.l.when.ewc: ewc cannot take 'yes'" in problems[0]


def test_unsafe_yaml_tags_are_rejected() -> None:
    problems = check_text("parameters: !!python/object/apply:os.system [echo hi]\n")
    assert len(problems) == 1 and "malformed YAML" in problems[0]


def test_missing_file_error_has_problems(tmp_path: Path) -> None:
    with pytest.raises(SpaceError) as info:
        load(tmp_path / "missing.yaml")
    assert info.value.problems == [str(info.value)]


def test_cycle_names_only_the_cycle() -> None:
    problems = check_text("parameters:\n"
                          "  a: {type: bool, when: {b: true}}\n"
                          "  b: {type: bool, when: {a: true}}\n"
                          "  c: {type: bool, when: {a: true}}\n"
                          "  d: {type: bool}\n"
                          "objectives: {acc: maximize}\n", "f.yaml")
    assert problems == ["f.yaml: parameters.a.when: conditions form a cycle among ['a', 'b']"]
