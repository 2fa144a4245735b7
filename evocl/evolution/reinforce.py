"""``rl``: a REINFORCE policy-gradient controller over the search space.

The RL-for-search idea of neural architecture search (Zoph & Le 2017), with the controller
reduced to an independent policy per parameter, in the space's genome encoding (one gene in
[0, 1] per parameter, see ``SearchSpace.encode``):

- categorical and bool parameters: a softmax over their choices (logits ``theta``);
- float and int parameters: a Gaussian ``N(mu, sigma)`` over the gene (position in
  [low, high], on the log scale for log parameters), clipped to [0, 1] when decoded.

Each candidate is drawn from the policy (a generator seeded by (seed, candidate id), so
``ask(n)`` equals n ``ask(1)``). When its result is told, the policy takes one REINFORCE step
(Williams 1992) with a moving-average baseline ``b`` as control variate:

    A = (r - b) / s                         advantage, s = moving RMS of r - b
    theta += lr * A * (onehot - softmax)    grad of log p(choice)
    mu += lr * A * (u - mu)                 grad of log N(u; mu, sigma), times sigma^2
    log sigma += lr_sigma * A * ((u - mu)^2 / sigma^2 - 1)
    b += baseline_rate * (r - b)

The Gaussian steps are preconditioned by the Fisher information (the natural gradient, as in
PGPE, Sehnke et al. 2010, and NES, Wierstra et al. 2014), so the step size does not blow up
as sigma shrinks; sigma stays within [min_sigma, 0.5]. Only genes active in the decoded
configuration are updated.

Reward r (larger is better): with ``reward: scalarised`` (default) minus the mean of the
objectives in minimization form, each normalized by the range seen so far (so it lies in
[-1, 0]); with ``reward: first`` the same for the first objective only. An infeasible result
scores -1 - cv / (1 + cv) (below every feasible one; a smaller violation scores higher), a
failed or pruned one (early stopping) -2. Configurations not drawn from the policy (initial ones, random fallbacks for
duplicates) move the baseline only. The state is plain JSON: policy, baseline and the draws
of the candidates in flight, so an engine rebuilt from ``state()`` continues exactly.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from evocl.errors import UserError
from evocl.evolution.base import Engine, Proto

_POLICY = 5      # rng purpose tag (see Engine._rng)
_FAILED = -2.0   # reward of a failed evaluation
_MAX_SIGMA = 0.5
_MU_PAD = 0.5     # a mean may leave [0, 1] by this much, so a bound is reached with certainty


class Reinforce(Engine):
    """REINFORCE with a moving-average baseline; one policy step per told result."""

    algorithm = "rl"
    DEFAULTS = {
        "lr": 0.1,                # step size of the logits and the Gaussian means
        "lr_sigma": 0.05,         # step size of the Gaussians' log standard deviations
        "init_sigma": 0.3,        # initial standard deviation of each numeric gene
        "min_sigma": 0.02,        # lower bound of the standard deviations
        "baseline_rate": 0.1,     # weight of the newest reward in the moving-average baseline
        "reward": "scalarised",   # "scalarised" (mean of normalized objectives) or "first"
    }

    def __init__(self, space: Any, **kwargs: Any):
        super().__init__(space, **kwargs)
        self._check_options()
        o = self.options
        self._params = list(space.parameters)
        self._numeric = [p.type in ("float", "int") for p in self._params]
        self._n_choices = [len(p.choices) if p.type == "categorical" else 2 for p in self._params]
        # policy: Gaussian mean / log-std per numeric gene, logits per categorical or bool gene
        self._mu = {p.name: 0.5 for p, num in zip(self._params, self._numeric) if num}
        self._log_sigma = {name: math.log(o["init_sigma"]) for name in self._mu}
        self._logits = {p.name: [0.0] * k for p, num, k in
                        zip(self._params, self._numeric, self._n_choices) if not num}
        self._baseline: float | None = None
        self._adv_ms = 0.0           # moving mean square of the raw advantage
        self._draws: dict[int, list[float]] = {}   # in-flight candidate id -> its draw
        self._lo: list[float] | None = None         # range of the minimization vectors seen
        self._hi: list[float] | None = None

    def _check_options(self) -> None:
        o = self.options
        for key in ("lr", "lr_sigma", "baseline_rate"):
            if not (_number(o[key]) and o[key] > 0):
                raise UserError(f"must be a number > 0, got {o[key]!r}", source=self.algorithm,
                                field=key)
        if not (_number(o["baseline_rate"]) and o["baseline_rate"] <= 1):
            raise UserError(f"must be in (0, 1], got {o['baseline_rate']!r}",
                            source=self.algorithm, field="baseline_rate")
        for key in ("init_sigma", "min_sigma"):
            if not (_number(o[key]) and 0 < o[key] <= _MAX_SIGMA):
                raise UserError(f"must be a number in (0, {_MAX_SIGMA}], got {o[key]!r}",
                                source=self.algorithm, field=key)
        if o["reward"] not in ("scalarised", "first"):
            raise UserError(f"must be 'scalarised' or 'first', got {o['reward']!r}",
                            source=self.algorithm, field="reward")

    # ------------------------------------------------------------------------ ask
    def _next_proto(self) -> Proto | None:
        proto = self._take_initial()
        if proto is not None:
            return proto
        cid = len(self._candidates)
        rng = self._rng(_POLICY, cid)
        made: dict[str, Any] = {}

        def draw() -> Proto:
            genes, draw_ = self._sample(rng)
            made["proto"] = self._proto(self.space.decode(genes))
            made["draw"] = draw_
            return made["proto"]
        proto = self._fresh(draw, rng)
        if proto is made.get("proto"):       # drawn from the policy (not a random fallback)
            self._draws[cid] = made["draw"]
        return proto

    def _proto(self, config: Mapping[str, Any], parents: tuple[int, ...] = (),
               origin: str = "sample", generation: int | None = None) -> Proto:
        return super()._proto(config, parents, origin, self.n_told // self.population_size)

    def _sample(self, rng: np.random.Generator) -> tuple[list[float], list[float]]:
        """(genome, draw): the draw keeps each numeric gene unclipped and each categorical
        gene as its choice index, which is what the gradient needs."""
        u = rng.random(len(self._params))
        z = rng.standard_normal(len(self._params))
        genome, draw = [], []
        for i, p in enumerate(self._params):
            if self._numeric[i]:
                x = self._mu[p.name] + math.exp(self._log_sigma[p.name]) * float(z[i])
                genome.append(min(max(x, 0.0), 1.0))
                draw.append(x)
            else:
                probs = _softmax(self._logits[p.name])
                k = min(int(np.searchsorted(np.cumsum(probs), u[i], side="right")), len(probs) - 1)
                genome.append((k + 0.5) / len(probs))
                draw.append(float(k))
        return genome, draw

    # ------------------------------------------------------------------------ tell
    def _on_tell(self, cid: int) -> None:
        r = self._reward(cid)
        draw = self._draws.pop(cid, None)
        if self._baseline is None:
            self._baseline = r
        elif draw is not None:
            adv = r - self._baseline
            if self._adv_ms == 0.0:
                self._adv_ms = adv * adv
            else:
                self._adv_ms += self.options["baseline_rate"] * (adv * adv - self._adv_ms)
            if self._adv_ms > 0.0:
                self._step(self._candidates[cid].config, draw, adv / math.sqrt(self._adv_ms))
        self._baseline += self.options["baseline_rate"] * (r - self._baseline)
        super()._on_tell(cid)

    def _reward(self, cid: int) -> float:
        fmin = self._fmin.get(cid)
        if fmin is None or cid in self._pruned:   # pruned (early stopping): as a failure, below
            return _FAILED                       # every full evaluation; partial values unused
        if self._lo is None or self._hi is None:
            self._lo, self._hi = list(fmin), list(fmin)
        else:
            self._lo = [min(a, b) for a, b in zip(self._lo, fmin)]
            self._hi = [max(a, b) for a, b in zip(self._hi, fmin)]
        cv = self._cv[cid]
        if cv > 0.0:
            return -1.0 - cv / (1.0 + cv)
        n = 1 if self.options["reward"] == "first" else len(fmin)
        norm = [(f - lo) / (hi - lo) if hi > lo else 0.0
                for f, lo, hi in zip(fmin[:n], self._lo, self._hi)]
        return -sum(norm) / n

    def _step(self, config: Mapping[str, Any], draw: list[float], adv: float) -> None:
        lr, lr_s = self.options["lr"], self.options["lr_sigma"]
        lo_s, hi_s = math.log(self.options["min_sigma"]), math.log(_MAX_SIGMA)
        for i, p in enumerate(self._params):
            if p.name not in config:         # inactive: its gene did not matter
                continue
            if self._numeric[i]:
                mu, log_s = self._mu[p.name], self._log_sigma[p.name]
                d = draw[i] - mu
                s2 = math.exp(2.0 * log_s)
                self._mu[p.name] = min(max(mu + lr * adv * d, -_MU_PAD), 1.0 + _MU_PAD)
                self._log_sigma[p.name] = min(max(log_s + lr_s * adv * (d * d / s2 - 1.0),
                                                  lo_s), hi_s)
            else:
                logits = self._logits[p.name]
                probs = _softmax(logits)
                k = int(draw[i])
                self._logits[p.name] = [t + lr * adv * ((j == k) - q)
                                        for j, (t, q) in enumerate(zip(logits, probs))]

    # ------------------------------------------------------------------------ views
    def policy(self) -> dict[str, Any]:
        """The current policy, readable: name -> {"mu", "sigma"} or {"probs": [...]}."""
        out: dict[str, Any] = {}
        for p in self._params:
            if p.name in self._mu:
                out[p.name] = {"mu": self._mu[p.name], "sigma": math.exp(self._log_sigma[p.name])}
            else:
                out[p.name] = {"probs": [float(q) for q in _softmax(self._logits[p.name])]}
        return out

    # ------------------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        return {"mu": dict(self._mu), "log_sigma": dict(self._log_sigma),
                "logits": {k: list(v) for k, v in self._logits.items()},
                "baseline": self._baseline, "adv_ms": self._adv_ms,
                "draws": [[i, list(d)] for i, d in sorted(self._draws.items())],
                "lo": self._lo, "hi": self._hi}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        # _load_state replays the told results through _record only (no _on_tell), so the
        # policy comes from here, as saved
        self._mu = {k: float(v) for k, v in extra["mu"].items()}
        self._log_sigma = {k: float(v) for k, v in extra["log_sigma"].items()}
        self._logits = {k: [float(t) for t in v] for k, v in extra["logits"].items()}
        self._baseline = None if extra["baseline"] is None else float(extra["baseline"])
        self._adv_ms = float(extra["adv_ms"])
        self._draws = {int(i): [float(x) for x in d] for i, d in extra["draws"]}
        self._lo = None if extra["lo"] is None else [float(v) for v in extra["lo"]]
        self._hi = None if extra["hi"] is None else [float(v) for v in extra["hi"]]


def _softmax(logits: list[float]) -> np.ndarray:
    t = np.asarray(logits, dtype=float)
    e = np.exp(t - t.max())
    return e / e.sum()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
