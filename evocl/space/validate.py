"""Checking a parsed search-space document and turning it into Param/Objective/Constraint.

Every rule that fails adds one ``SpaceError`` (source, field path, rule with the value
given) and checking goes on, so ``check_file`` can list all problems at once.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping

from evocl.errors import SpaceError
from evocl.space.coerce import coerce_value
from evocl.space.params import DIRECTIONS, PARAM_TYPES, Constraint, Objective, Param, same_choice

TOP_KEYS = ("name", "description", "parameters", "objectives", "constraints")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "default", "when", "description"),
    "int": ("type", "low", "high", "step", "log", "default", "when", "description"),
    "categorical": ("type", "choices", "default", "when", "description"),
    "bool": ("type", "default", "when", "description"),
}
OBJECTIVE_KEYS = ("direction", "ref")
#: Largest |bound| of an int parameter: numpy samples ints as int64 (high + 1 must fit).
INT_LIMIT = 2**62
CONSTRAINT_KEYS = ("max", "min")


def _suggest(word: Any, valid: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(word), list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {list(valid)}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tname(v: Any) -> str:
    return {bool: "a bool", str: "a string", int: "an int", float: "a float", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(v), type(v).__name__)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[SpaceError] = []

    def err(self, field: str, rule: str) -> None:
        self.problems.append(SpaceError(rule, source=self.source, field=field))

    def keys(self, data: Mapping, valid: tuple[str, ...], path: str) -> None:
        for k in data:
            if k not in valid:
                self.err(f"{path}.{k}" if path else str(k), f"unknown key {k!r}{_suggest(k, valid)}")

    # -- parameters -----------------------------------------------------------------------
    def number(self, p: Mapping, key: str, path: str, *, integer: bool) -> Any:
        v = p.get(key)
        if v is None:
            self.err(f"{path}.{key}", f"required for type {p.get('type')!r}")
            return None
        if not _is_number(v):
            self.err(f"{path}.{key}", f"must be {'an int' if integer else 'a number'}, "
                                      f"got {_tname(v)} {v!r}")
            return None
        if integer and not isinstance(v, int):
            if float(v).is_integer():
                return int(v)
            self.err(f"{path}.{key}", f"must be an int, got {v!r}")
            return None
        if not math.isfinite(v):
            self.err(f"{path}.{key}", f"must be finite, got {v!r}")
            return None
        if integer and not -INT_LIMIT <= v <= INT_LIMIT:
            self.err(f"{path}.{key}", f"must be between -2**62 and 2**62 (sampled as a 64-bit "
                                      f"int), got {v:.3g}")
            return None
        return v  # ints stay ints in messages (low: 0 reads "0"); Param gets floats below

    def flag(self, p: Mapping, key: str, path: str) -> bool:
        v = p.get(key, False)
        if not isinstance(v, bool):
            self.err(f"{path}.{key}", f"must be true or false, got {_tname(v)} {v!r}")
            return False
        return v

    def param(self, name: Any, p: Any) -> Param | None:
        path = f"parameters.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            self.err(path, f"parameter names must be identifiers (letters, digits, _), got {name!r}")
            return None
        if not isinstance(p, Mapping):
            self.err(path, f"must be a mapping like {{type: float, low: 0, high: 1}}, "
                           f"got {_tname(p)} {p!r}")
            return None
        ptype = p.get("type")
        if ptype is None:
            self.err(f"{path}.type", f"required; one of {list(PARAM_TYPES)}")
            return None
        if ptype not in PARAM_TYPES:
            self.err(f"{path}.type", f"unknown type {ptype!r}{_suggest(ptype, PARAM_TYPES)}")
            return None
        n_before = len(self.problems)
        self.keys(p, PARAM_KEYS[ptype], path)
        kw: dict[str, Any] = {}
        if ptype in ("float", "int"):
            integer = ptype == "int"
            low = self.number(p, "low", path, integer=integer)
            high = self.number(p, "high", path, integer=integer)
            log = self.flag(p, "log", path)
            step = None
            if integer:
                step = 1
                if "step" in p:
                    step = self.number(p, "step", path, integer=True)
                    if step is not None and step < 1:
                        self.err(f"{path}.step", f"must be >= 1, got {step}")
                        step = None
                    elif step is not None and step > 1 and log:
                        self.err(f"{path}.step", f"step {step} cannot be combined with log: true")
            if low is not None and high is not None:
                if low >= high:
                    self.err(f"{path}.low", f"must be < high ({high}), got {low}")
                elif not math.isfinite(high - low):
                    self.err(f"{path}.high", f"range too large: high - low overflows ({low}, {high})")
                elif log and low <= 0:
                    self.err(f"{path}.low", f"must be > 0 with log: true, got {low}")
                elif integer and step and (high - low) % step != 0:
                    self.err(f"{path}.step", f"must divide high - low ({high} - {low} = "
                                             f"{high - low}), got {step}")
            if not integer and low is not None and high is not None:
                low, high = float(low), float(high)
            kw.update(low=low, high=high, log=log, step=step)
        elif ptype == "categorical":
            choices = p.get("choices")
            if not isinstance(choices, list):
                self.err(f"{path}.choices", f"must be a list of values, got {_tname(choices)} {choices!r}")
                return None
            if not choices:
                self.err(f"{path}.choices", "must not be empty, got []")
                return None
            for i, c in enumerate(choices):
                if not isinstance(c, (int, float, str, bool)):
                    self.err(f"{path}.choices[{i}]", f"must be a number, string or bool, "
                                                     f"got {_tname(c)} {c!r}")
                elif isinstance(c, float) and not math.isfinite(c):
                    self.err(f"{path}.choices[{i}]", f"must be finite, got {c!r}")
                elif any(same_choice(c, d) for d in choices[:i]):
                    self.err(f"{path}.choices[{i}]", f"duplicate choice {c!r}")
            kw["choices"] = tuple(choices)
        if "description" in p and not isinstance(p["description"], str):
            self.err(f"{path}.description", f"must be a string, got {_tname(p['description'])}")
        if len(self.problems) > n_before:
            return None
        param = Param(name=name, type=ptype, description=p.get("description"), **kw)
        if p.get("default") is not None:

            try:
                param = Param(**{**param.__dict__, "default": coerce_value(param, p["default"])})
            except SpaceError as e:
                self.err(f"{path}.default", e.rule)
        return param

    def conditions(self, params: dict[str, Param], raw: Mapping) -> dict[str, Param]:
        """Attach ``when`` to each parameter, checking parents and values."""
        out = dict(params)
        for name, param in params.items():
            when = raw[name].get("when")
            if when is None:
                continue
            path = f"parameters.{name}.when"
            if not isinstance(when, Mapping) or not when:
                self.err(path, f"must be a mapping like {{parent: value}}, got {when!r}")
                out.pop(name)
                continue
            norm: dict[str, tuple] = {}
            for parent, values in when.items():
                if parent not in raw:
                    self.err(f"{path}.{parent}", f"condition on unknown parameter {parent!r}"
                                                 f"{_suggest(parent, list(raw))}")
                    continue
                if parent not in params:
                    continue  # the parent is itself broken; already reported
                vals = values if isinstance(values, list) else [values]
                if not vals:
                    self.err(f"{path}.{parent}", "must name at least one value, got []")
                    continue
                good = []
                for v in vals:
                    try:
                        good.append(coerce_value(params[parent], v))
                    except SpaceError as e:
                        self.err(f"{path}.{parent}", f"{parent} cannot take {v!r}: {e.rule}")
                norm[parent] = tuple(good)
            if len(norm) == len(when):
                out[name] = Param(**{**param.__dict__, "when": norm})
            else:
                out.pop(name)
        return out

    def order(self, params: dict[str, Param]) -> list[Param]:
        """Topological order (parents first), stable with respect to file order; reports cycles."""
        done: list[Param] = []
        placed: set[str] = set()
        pending = list(params.values())
        while pending:
            ready = [p for p in pending
                     if all(q in placed or q not in params for q in (p.when or {}))]
            if not ready:
                # peel off parameters nothing pending depends on: what stays is on a cycle
                stuck = {p.name: set(p.when or {}) & {q.name for q in pending} for p in pending}
                while True:
                    needed = set().union(*stuck.values())
                    leaves = [n for n in stuck if n not in needed]
                    if not leaves:
                        break
                    for n in leaves:
                        del stuck[n]
                names = sorted(stuck)
                self.err(f"parameters.{names[0]}.when",
                         f"conditions form a cycle among {names}")
                break
            # take the first ready one in file order, then re-scan (keeps file order stable)
            first = ready[0]
            done.append(first)
            placed.add(first.name)
            pending.remove(first)
        return done

    # -- objectives and constraints -------------------------------------------------------
    def objective(self, name: Any, spec: Any) -> Objective | None:
        path = f"objectives.{name}"
        if isinstance(spec, str):
            spec = {"direction": spec}
        if not isinstance(spec, Mapping):
            self.err(path, f"must be maximize, minimize or {{direction: ..., ref: ...}}, got {spec!r}")
            return None
        self.keys(spec, OBJECTIVE_KEYS, path)
        direction = spec.get("direction")
        ok = True
        if direction not in DIRECTIONS:
            self.err(f"{path}.direction" if "direction" in spec else path,
                     f"invalid direction {direction!r}{_suggest(direction, DIRECTIONS)}")
            ok = False
        ref = spec.get("ref")
        if ref is not None and (not _is_number(ref) or not math.isfinite(ref)):
            self.err(f"{path}.ref", f"must be a number, got {_tname(ref)} {ref!r}")
            ok = False
        return Objective(str(name), direction, None if ref is None else float(ref)) if ok else None

    def constraint(self, name: Any, spec: Any) -> Constraint | None:
        path = f"constraints.{name}"
        if not isinstance(spec, Mapping) or not spec:
            self.err(path, f"must be a mapping like {{max: 2000000}}, got {spec!r}")
            return None
        self.keys(spec, CONSTRAINT_KEYS, path)
        vals: dict[str, float | None] = {}
        for k in CONSTRAINT_KEYS:
            v = spec.get(k)
            if v is not None and (not _is_number(v) or not math.isfinite(v)):
                self.err(f"{path}.{k}", f"must be a number, got {_tname(v)} {v!r}")
                return None
            vals[k] = None if v is None else float(v)
        if vals["max"] is None and vals["min"] is None:
            self.err(path, "give max, min or both")
            return None
        if vals["max"] is not None and vals["min"] is not None and vals["min"] > vals["max"]:
            self.err(f"{path}.min", f"must be <= max ({vals['max']}), got {vals['min']}")
            return None
        return Constraint(str(name), max=vals["max"], min=vals["min"])


def build(data: Any, source: str) -> tuple[dict[str, Any], list[SpaceError]]:
    """Check a parsed document; return (parts, problems). ``parts`` is usable only when
    ``problems`` is empty: name, description, parameters (tuple, topological), objectives,
    constraints."""
    c = _Checker(source)
    parts: dict[str, Any] = {"name": None, "description": None, "parameters": (),
                             "objectives": (), "constraints": ()}
    if not isinstance(data, Mapping):
        c.err("", f"a search space must be a mapping with 'parameters' and 'objectives', "
                  f"got {_tname(data)}")
        return parts, c.problems
    c.keys(data, TOP_KEYS, "")
    for k in ("name", "description"):
        if data.get(k) is not None and not isinstance(data[k], str):
            c.err(k, f"must be a string, got {_tname(data[k])} {data[k]!r}")
        parts[k] = data.get(k) if isinstance(data.get(k), str) else None

    raw_params = data.get("parameters")
    if not isinstance(raw_params, Mapping) or not raw_params:
        c.err("parameters", "at least one parameter is required, got "
                            f"{'none' if not raw_params else _tname(raw_params)}")
        raw_params = {}
    params = {}
    for name, spec in raw_params.items():
        p = c.param(name, spec)
        if p is not None:
            params[name] = p
    params = c.conditions(params, raw_params)
    parts["parameters"] = tuple(c.order(params))

    raw_obj = data.get("objectives")
    if not isinstance(raw_obj, Mapping) or not raw_obj:
        c.err("objectives", "at least one objective is required (e.g. acc: maximize), got "
                            f"{'none' if not raw_obj else _tname(raw_obj)}")
        raw_obj = {}
    parts["objectives"] = tuple(o for o in (c.objective(k, v) for k, v in raw_obj.items()) if o)

    raw_con = data.get("constraints")
    if raw_con is not None and not isinstance(raw_con, Mapping):
        c.err("constraints", f"must be a mapping of name -> {{max: ..., min: ...}}, got {_tname(raw_con)}")
        raw_con = {}
    parts["constraints"] = tuple(
        x for x in (c.constraint(k, v) for k, v in (raw_con or {}).items()) if x)
    return parts, c.problems
