"""Benchmark problems for the engines: ZDT1, ZDT2 (30 variables) and DTLZ2 (3 objectives,
12 variables), their search spaces, the true Pareto front's hypervolume, and ``Problem``, an
evaluation target with deterministic delays and failure injection (for executor, kill and
resume tests: ``"evocl.evolution.problems:Problem"`` with kwargs ``{"name": "zdt1", ...}``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Mapping

import numpy as np

from evocl.errors import UserError
from evocl.records import Candidate, Result

REF = 1.1  # reference value of every objective (minimize) in the problem spaces


def zdt1(x: np.ndarray) -> tuple[float, float]:
    """ZDT1 (Zitzler, Deb, Thiele 2000): convex front f2 = 1 - sqrt(f1)."""
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    f1 = float(x[0])
    return f1, g * (1.0 - math.sqrt(f1 / g))


def zdt2(x: np.ndarray) -> tuple[float, float]:
    """ZDT2: concave front f2 = 1 - f1**2."""
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    f1 = float(x[0])
    return f1, g * (1.0 - (f1 / g) ** 2)


def dtlz2(x: np.ndarray, n_obj: int = 3) -> tuple[float, ...]:
    """DTLZ2 (Deb, Thiele, Laumanns, Zitzler 2002): front is the unit sphere's positive part."""
    m = n_obj
    g = float(np.sum((x[m - 1:] - 0.5) ** 2))
    theta = x[: m - 1] * (math.pi / 2.0)
    out = []
    for i in range(m):
        f = 1.0 + g
        f *= float(np.prod(np.cos(theta[: m - 1 - i])))
        if i > 0:
            f *= math.sin(float(theta[m - 1 - i]))
        out.append(f)
    return tuple(out)


# name -> (function, number of variables, number of objectives, true-front hypervolume at REF)
PROBLEMS: dict[str, tuple[Callable[[np.ndarray], tuple[float, ...]], int, int, float]] = {
    # ZDT1: integral over f1 in [0,1] of (1.1 - (1 - sqrt f1)) plus the strip 0.1 x 1.1
    "zdt1": (zdt1, 30, 2, (REF - 1.0) + 2.0 / 3.0 + (REF - 1.0) * REF),
    # ZDT2: 1.1 - 1 + 1/3 over [0,1] plus the strip 0.1 x 1.1
    "zdt2": (zdt2, 30, 2, (REF - 1.0) + 1.0 / 3.0 + (REF - 1.0) * REF),
    # DTLZ2: the box [0, 1.1]^3 minus the unit sphere's octant (pi/6)
    "dtlz2": (dtlz2, 12, 3, REF ** 3 - math.pi / 6.0),
}


def _spec(name: str) -> tuple[Callable[[np.ndarray], tuple[float, ...]], int, int, float]:
    if name not in PROBLEMS:
        raise UserError(f"must be one of {sorted(PROBLEMS)}, got {name!r}", source="problem",
                        field="name")
    return PROBLEMS[name]


def _n_var(name: str, n_var: int | None) -> int:
    _, default, n_obj, _ = _spec(name)
    if n_var is None:
        return default
    if not isinstance(n_var, int) or n_var < max(2, n_obj):
        raise UserError(f"must be an int >= {max(2, n_obj)}, got {n_var!r}", source="problem",
                        field="n_var")
    return n_var


def problem_dict(name: str, n_var: int | None = None) -> dict[str, Any]:
    """The problem's search space in ``SearchSpace.from_dict`` form: x0..x{n-1} floats in
    [0, 1] (n = 30 for ZDT, 12 for DTLZ2 unless ``n_var`` is given); objectives f1, f2 (, f3)
    minimized with reference 1.1 (the true front does not depend on n)."""
    n_var = _n_var(name, n_var)
    n_obj = _spec(name)[2]
    return {
        "name": name,
        "parameters": {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(n_var)},
        "objectives": {f"f{j + 1}": {"direction": "minimize", "ref": REF} for j in range(n_obj)},
    }


def problem_space(name: str, n_var: int | None = None) -> Any:
    """The problem's SearchSpace (see ``problem_dict``)."""
    from evocl.space import SearchSpace

    return SearchSpace.from_dict(problem_dict(name, n_var))


def true_hypervolume(name: str) -> float:
    """Hypervolume of the true Pareto front w.r.t. the reference point (1.1, ...), analytic."""
    return _spec(name)[3]


def evaluate(name: str, config: Mapping[str, Any]) -> dict[str, float]:
    """Objective values {f1: .., f2: ..} of a configuration of the problem's space (its
    number of variables is read from the configuration)."""
    fn = _spec(name)[0]
    n_var = len(config)
    x = np.fromiter((float(config[f"x{i}"]) for i in range(n_var)), dtype=float, count=n_var)
    return {f"f{j + 1}": float(v) for j, v in enumerate(fn(x))}


def _every(k: int, cid: int) -> bool:
    return k > 0 and cid % k == k - 1


class Problem:
    """Evaluation target for tests: ``Problem(name)(candidate) -> Result``.

    Everything is deterministic by candidate id (ids k-1, 2k-1, ... for ``*_every=k``):
    ``delay`` seconds of sleep per evaluation; ``fail_every`` raises RuntimeError (the
    executor turns it into a failed Result); ``nan_every`` returns a NaN objective;
    ``hang_every`` sleeps ``hang_s`` (for timeouts); ``exit_every`` ends the worker process with
    ``os._exit(3)`` (dead-worker tests; never use it with an in-process executor).

    ``tasks=T`` (>= 2) makes it a multi-fidelity problem for early-stopping tests: the
    evaluation is T "tasks" of ``delay / T`` seconds each; after task t < T it calls
    ``on_task_end(report)`` with ``tasks_seen``, ``n_tasks``, ``elapsed`` and the objectives at
    that fidelity (the final values plus a deterministic bias that shrinks as t grows), and
    stops with a ``pruned`` Result of those objectives when the answer is False;
    ``fail_every`` then fails in the first task. ``low_fidelity=f`` (with ``tasks``) adds the
    cheap pass of `evocl.cl.evaluation.evaluate`: ``delay * f`` seconds, then one report with
    ``tasks_seen`` = ``n_tasks``, ``fidelity`` = f and the final values plus a bias of up to
    ``0.5 * (1 - f)``; stopped there, a ``pruned`` Result (``tasks_trained`` 0), else the
    tasks as above.
    """

    def __init__(self, name: str = "zdt1", n_var: int | None = None, delay: float = 0.0,
                 fail_every: int = 0,
                 nan_every: int = 0, hang_every: int = 0, hang_s: float = 3600.0,
                 exit_every: int = 0, tasks: int = 0, low_fidelity: float | None = None):
        _n_var(name, n_var)
        if low_fidelity is not None:
            from evocl.evolution.early_stop import check_fraction
            check_fraction(low_fidelity, "problem")
            if not tasks:
                raise UserError("needs tasks >= 2", source="problem", field="low_fidelity")
        self.low_fidelity = low_fidelity
        for field, v in (("delay", delay), ("hang_s", hang_s)):
            if v < 0:
                raise UserError(f"must be >= 0, got {v}", source="problem", field=field)
        for field, k in (("fail_every", fail_every), ("nan_every", nan_every),
                         ("hang_every", hang_every), ("exit_every", exit_every)):
            if not isinstance(k, int) or k < 0:
                raise UserError(f"must be an int >= 0, got {k!r}", source="problem", field=field)
        if not isinstance(tasks, int) or tasks < 0 or tasks == 1:
            raise UserError(f"must be 0 (no tasks) or an int >= 2, got {tasks!r}",
                            source="problem", field="tasks")
        self.tasks = tasks
        self.name = name
        self.delay = float(delay)
        self.fail_every, self.nan_every = fail_every, nan_every
        self.hang_every, self.hang_s, self.exit_every = hang_every, float(hang_s), exit_every

    def __call__(self, candidate: Candidate,
                 on_task_end: Callable[[dict[str, Any]], bool] | None = None) -> Result:
        start = time.perf_counter()
        cid = candidate.id
        if self.tasks:
            final = evaluate(self.name, candidate.config)
            f = self.low_fidelity
            if f is not None and on_task_end is not None:
                time.sleep(self.delay * f)
                rng = np.random.default_rng([candidate.seed, 0])
                cheap = {k: v + 0.5 * (1.0 - f) * float(rng.random()) for k, v in final.items()}
                if not on_task_end({"tasks_seen": self.tasks, "n_tasks": self.tasks,
                                    "fidelity": f, **cheap,
                                    "elapsed": time.perf_counter() - start}):
                    return Result(objectives=cheap, status="pruned",
                                  metrics={"problem": self.name, "tasks_trained": 0,
                                           "tasks_planned": self.tasks,
                                           "low_fidelity": {"fidelity": f,
                                                            "seconds": self.delay * f}},
                                  wall_time=time.perf_counter() - start)
            for t in range(1, self.tasks):
                time.sleep(self.delay / self.tasks)
                if _every(self.fail_every, cid):
                    raise RuntimeError(f"injected failure for candidate {cid} in task {t}")
                partial = self._partial(final, candidate.seed, t)
                if on_task_end is not None and not on_task_end(
                        {"tasks_seen": t, "n_tasks": self.tasks, **partial,
                         "elapsed": time.perf_counter() - start}):
                    return Result(objectives=partial, status="pruned",
                                  metrics={"problem": self.name, "tasks_trained": t,
                                           "tasks_planned": self.tasks},
                                  wall_time=time.perf_counter() - start)
            time.sleep(self.delay / self.tasks)
        elif self.delay:
            time.sleep(self.delay)
        if _every(self.exit_every, cid):
            os._exit(3)
        if _every(self.hang_every, cid):
            time.sleep(self.hang_s)
        if _every(self.fail_every, cid):
            raise RuntimeError(f"injected failure for candidate {cid}")
        objectives = evaluate(self.name, candidate.config)
        if _every(self.nan_every, cid):
            objectives["f1"] = math.nan
        metrics: dict[str, Any] = {"problem": self.name}
        if self.tasks:
            metrics.update(tasks_trained=self.tasks, tasks_planned=self.tasks)
            if self.low_fidelity is not None and on_task_end is not None:
                metrics["low_fidelity"] = {"fidelity": self.low_fidelity,
                                           "seconds": self.delay * self.low_fidelity}
        return Result(objectives=objectives, metrics=metrics,
                      wall_time=time.perf_counter() - start)

    def _partial(self, final: Mapping[str, float], seed: int, t: int) -> dict[str, float]:
        """Objectives after t of T tasks: each final value plus up to 0.5 * (T - t) / T."""
        rng = np.random.default_rng([seed, t])
        shrink = (self.tasks - t) / self.tasks
        return {k: v + 0.5 * shrink * float(rng.random()) for k, v in final.items()}
