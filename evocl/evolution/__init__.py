"""Ask/tell search engines over an evocl search space.

Every engine has the same interface: ``ask(n) -> list[Candidate]``, ``tell(candidate,
result)``, ``state() -> dict`` (JSON-ready) and ``from_state(space, state)``, plus
``n_asked``, ``n_told``, ``generation``, ``pareto_front()`` and ``hypervolume()``.

The algorithms are the table ``evocl.registry.ENGINES`` (name -> "module:Class"; the CLI's
``--algorithm`` choices, its help, validation and the shared test suite read it): ``nsga2``
(generational NSGA-II), ``ga`` (single-objective GA with elitism, on the first objective),
``async-nsga2`` (steady-state NSGA-II without a generation barrier), ``random``,
``optuna-tpe`` and ``optuna-nsga2`` (Optuna samplers through its ask/tell API), ``rl``
(a REINFORCE policy-gradient controller). The genetic engines are composed of the parts in
``evocl.evolution.parts`` (selection, survival, variation); ``evocl.testing.engines`` is the
contract every engine passes.

Drive an engine by hand with your own objective function::

    import numpy as np
    from evocl.evolution import create
    from evocl.evolution.problems import problem_space
    from evocl.records import Result

    space = problem_space("zdt1")                 # x0..x29 in [0, 1]; minimize f1, f2
    engine = create("nsga2", space, population_size=20, seed=0)
    while engine.n_told < 400:
        for cand in engine.ask(20):               # a generation waits on its tells: may be []
            x = np.array([cand.config[f"x{i}"] for i in range(30)])
            g = 1 + 9 * x[1:].mean()
            f2 = g * (1 - np.sqrt(x[0] / g))
            engine.tell(cand, Result(objectives={"f1": x[0], "f2": f2}))
    print(engine.hypervolume(), len(engine.pareto_front()))

A result whose status is ``failed``, or with an objective missing, NaN or +-inf, counts as
failed (``evocl.evolution.pareto``'s rule).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from evocl.errors import UserError
from evocl.evolution.base import STATE_FORMAT, Engine
from evocl.registry import ENGINES

__all__ = ["ENGINES", "Engine", "create", "from_state"]


def create(algorithm: str, space: Any, *, population_size: int = 8, seed: int = 0,
           initial: Sequence[Mapping[str, Any]] | None = None, **opts: Any) -> Engine:
    """A new engine. ``initial`` configurations are asked first (part of generation 0);
    ``opts`` are algorithm options (see each class's ``DEFAULTS``), e.g. ``eta_c=15``."""
    return ENGINES.load(algorithm)(space, population_size=population_size, seed=seed,
                                   initial=initial, **opts)


def from_state(space: Any, state: Mapping[str, Any]) -> Engine:
    """Rebuild an engine from ``engine.state()``; it continues exactly as the original.

    Candidates asked but not told are ``engine.in_flight``: re-submit and tell them. A state
    that cannot be loaded (a field missing or of the wrong type) is a UserError, never another
    exception. Nothing here checks that the state is what the engine would have produced: the
    runner uses a snapshot only when the run's journal vouches for it (``evocl.runner``).
    """
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise UserError(f"not an engine state (format must be {STATE_FORMAT!r})",
                        source="engine state", field="format")
    if state.get("space_fingerprint") != space.fingerprint:
        raise UserError("the state was saved with a different search space "
                        f"({state.get('space_fingerprint')} != {space.fingerprint})",
                        source="engine state", field="space_fingerprint")
    try:
        cls = ENGINES.load(str(state["algorithm"]), source="engine state")
        engine = cls(space, population_size=int(state["population_size"]),
                     seed=int(state["seed"]), max_tries=int(state["max_tries"]),
                     **dict(state["options"]))
        engine._load_state(state)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a state is data from a file: any fault is its own
        raise UserError(f"not a usable engine state ({type(e).__name__}: {str(e)[:200]})",
                        source="engine state") from None
    return engine
