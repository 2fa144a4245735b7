"""Shared pieces of the engine benchmarks: a simulated pool of workers (event queue, no real
sleeping) that drives any evocl engine, and hypervolume of everything evaluated."""

from __future__ import annotations

import heapq
import json
import math
import os
import platform
import sys
from typing import Any, Callable

import numpy as np

from evocl.evolution import pareto
from evocl.records import Candidate, Result

ROOT = os.path.dirname(os.path.abspath(__file__))


def lognormal_durations(rng: np.random.Generator, cv: float = 1.0, mean: float = 1.0):
    """A draw() of lognormal evaluation times with the given mean and coefficient of variation."""
    sigma = math.sqrt(math.log(1.0 + cv * cv))
    mu = math.log(mean) - sigma * sigma / 2.0

    def draw() -> float:
        return float(rng.lognormal(mu, sigma))
    return draw


def simulate(engine: Any, objective: Callable[[Candidate], Result], budget: int, workers: int,
             duration: Callable[[], float]) -> dict[str, float]:
    """Event-driven run: every free worker asks for one candidate; the earliest finishing
    evaluation is told first. Returns makespan and worker utilization (busy / capacity)."""
    clock, busy = 0.0, 0.0
    running: list[tuple[float, int, Candidate]] = []
    asked = 0
    while engine.n_told < budget:
        while len(running) < workers and asked < budget:
            got = engine.ask(1)
            if not got:
                break                      # generation barrier: the worker idles
            d = duration()
            busy += d
            asked += 1
            heapq.heappush(running, (clock + d, got[0].id, got[0]))
        if not running:
            raise RuntimeError("engine returned no candidate with nothing in flight")
        clock, _, cand = heapq.heappop(running)
        engine.tell(cand, objective(cand))
    return {"makespan": clock, "utilization": busy / (workers * clock)}


def archive_hv(points: np.ndarray, ref: list[float]) -> float:
    """Hypervolume of the non-dominated points among ``points`` (minimization)."""
    arch = pareto.Archive()
    for i, p in enumerate(points):
        arch.add(i, p)
    return pareto.hypervolume(arch.points, ref)


def machine() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": str(os.cpu_count())}


def write_json(name: str, data: dict) -> str:
    path = os.path.join(ROOT, "results", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"median": float(np.median(a)), "q1": float(np.percentile(a, 25)),
            "q3": float(np.percentile(a, 75)), "min": float(a.min()), "max": float(a.max()),
            "n": int(len(a))}
