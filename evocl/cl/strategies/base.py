"""The continual-learning strategy protocol: parameters, hooks, export descriptions.

A strategy is one module in ``evocl/cl/strategies/`` holding one `Strategy` subclass and one
line in the ``STRATEGIES`` table (``evocl/cl/strategies/__init__.py``). The class owns:

- ``PARAMS``: its parameters (name, default, bounds or choices). `evocl.cl.params` assembles
  ``CLParams``, ``KNOWN_PARAMETERS`` and validation from every strategy's ``PARAMS``; the
  shipped spaces' defaults are checked against them by a test.
- hooks, called by the training loop (`evocl.cl.train.run_stream`), which knows no strategy by
  name. Hooks RETURN what they contribute; they do not reach into the loop's state:

      n_mix(ctx)                      rows of the next batch this strategy supplies
      mix(ctx, n)                     those rows (training-split row ids)
      loss_terms(ctx, batch, out)     extra loss terms (tensors) added to the task loss
      perturb(ctx, batch, grad)       an input perturbation (adversarial training): the loop
                                      runs a second forward/backward on embeddings + it
      transform_grads(ctx, grads)     replacement gradients (e.g. A-GEM's projection) or None
      update(ctx, rows, step)         a whole update rule around ``step`` (e.g. MER's
                                      Reptile meta-update); at most one strategy may have it
      end_task(ctx, t, drawn)         work after task t (Fisher, buffer, teacher snapshot);
                                      ``drawn``: the task's new rows in the order drawn

  ``ctx`` is the `Context`: the learner (model family: how a batch becomes a loss, how a split
  is scored, what a teacher distils), the resolved parameters, the device and this strategy's
  own random generators. A batch knows the task being trained (``batch.t``). The learner, not the strategy, knows encoder classifiers from causal
  language models, so each strategy is written once for both.
- ``describe(p)``: the ``continual_settings`` text of exports; ``avalanche(p, n_classes)``:
  the Avalanche plugin and notes (None when Avalanche has no counterpart).

Modules here import torch lazily (`lazy`), so that the parameters (and so ``CLParams``, the
CLI, the runner and the exports) never load torch for a constant.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, ClassVar, Sequence


class lazy(ModuleType):
    """A module imported on first attribute access: ``torch = lazy("torch")``."""

    def __init__(self, name: str):
        super().__init__(name)
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr == "_module":
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attr)


@dataclass(frozen=True)
class Param:
    """One parameter: its default and what values are valid (the search space picks the
    searched range inside these bounds). ``low_open``: low itself is invalid."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[Any, ...] = ()
    help: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)


@dataclass(frozen=True)
class AvalancheSpec:
    """What an Avalanche user needs for this strategy: plugins and how the numbers map."""

    plugins: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    train_mb: int | None = None  # the new-data mini-batch size when the strategy changes it


@dataclass
class Context:
    """What a strategy's hooks see of the run: the learner, the resolved parameters, the
    device, this strategy's random generators (``rngs[k]`` for each index in its ``streams``:
    children of the candidate's seed, so runs are reproducible) and the other active
    strategies by name."""

    learner: Any
    params: Any
    device: Any
    rngs: tuple[Any, ...] = ()
    others: dict[str, "Strategy"] = field(default_factory=dict)

    @property
    def rng(self) -> Any:
        return self.rngs[0]

    def peer(self, name: str) -> "Strategy | None":
        """Another active strategy (e.g. MER and A-GEM read the replay buffer)."""
        return self.others.get(name)


class Strategy:
    """Base class: every hook does nothing. ``switch`` names the bool parameter that turns the
    strategy on (``None``: always considered; ``active`` decides)."""

    name: ClassVar[str] = "base"
    switch: ClassVar[str | None] = None
    PARAMS: ClassVar[Sequence[Param]] = ()
    #: the loop makes the input embeddings a leaf that requires grad (for ``perturb``)
    needs_input_grad: ClassVar[bool] = False
    #: indices of the candidate seed's child generators this strategy draws from (unique
    #: across strategies; 0 is the loop's batch order)
    streams: ClassVar[tuple[int, ...]] = ()

    def __init__(self, ctx: Context):
        self.ctx = ctx

    @classmethod
    def active(cls, p: Any) -> bool:
        return bool(getattr(p, cls.switch)) if cls.switch else False

    # ------------------------------------------------------------------ hooks
    def n_mix(self, ctx: Context) -> int:
        return 0

    def mix(self, ctx: Context, n: int) -> Any:
        raise NotImplementedError

    def loss_terms(self, ctx: Context, batch: Any, out: Any) -> list[Any]:
        return []

    def perturb(self, ctx: Context, batch: Any, grad: Any) -> Any:
        raise NotImplementedError

    def transform_grads(self, ctx: Context, grads: list[Any]) -> list[Any] | None:
        return None

    update: ClassVar[Callable[..., Any] | None] = None

    def end_task(self, ctx: Context, t: int, drawn: Any) -> None:
        pass

    def counters(self) -> dict[str, Any]:
        """What the strategy counted over the run (reported in the Result's metrics)."""
        return {}

    # ------------------------------------------------------------------ exports
    @classmethod
    def describe(cls, p: Any) -> dict[str, Any] | None:
        """Settings for ``continual_learning.json`` (None when off)."""
        return None

    @classmethod
    def avalanche(cls, p: Any, n_classes: int) -> AvalancheSpec | None:
        return None
