"""A surrogate of evocl's CL evaluation, fitted on 1,248 real GPU evaluations.

In the manner of the surrogate benchmarks of HPO research (HPOBench's random-forest
surrogates, Eggensperger et al. 2015; YAHPO Gym, Pfisterer et al. 2022): regression models map
a configuration of ``search_spaces/cl_lora.yaml`` to what the real evaluator measured with
all-MiniLM-L6-v2 on one stream (``experiments/surrogate_search/data/gpu_runs_cl_lora.jsonl``, extracted by
``surrogate_data.py``):

- the 5 x 5 accuracy matrix R (R[i][j]: accuracy on task j after training task i), from
  which acc, forgetting, BWT, FWT and plasticity follow through ``evocl.cl.metrics`` exactly
  as the real evaluator computes them, after every task as well as at the end;
- the seconds of each task (log scale), whose running sum is a report's ``elapsed``;
- the probability of a failed evaluation (a non-finite loss under bf16: 42 of 1,248), and
  the task at which it happens;
- the number of trainable parameters, which is not modelled but computed (MiniLM's shapes,
  the rule of ``evocl.cl.model.lora_config``; checked against every evaluation).

``model`` picks the regressor: ``rf`` (random forest, the default: the best held-out fit of
the three, see ``bench_surrogate.py --fit-quality``), ``et`` (extremely randomized trees) or
``knn`` (distance-weighted nearest neighbours; a surrogate of another shape, to check that a
ranking of algorithms does not hinge on tree-shaped landscapes). Fitting is deterministic
(fixed random_state, one thread) and takes seconds, so nothing is saved: no pickle, the model
is refitted from the committed JSONL.

The surrogate is deterministic: a configuration always gets the same prediction (the mean
over the training runs' seeds); ``noise`` > 0 adds Gaussian noise of that many residual
standard deviations to R, drawn from the candidate's training seed.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from evocl.cl import metrics

ROOT = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(ROOT, "data", "gpu_runs_cl_lora.jsonl")
SPACE = os.path.join(ROOT, "..", "..", "search_spaces", "cl_lora.yaml")
N_TASKS = 5
MODELS = ("rf", "et", "knn")
GUIDE = 5.0   # weight of the ACC and forgetting columns among the matrix's targets

# all-MiniLM-L6-v2: 6 layers, hidden 384, feed-forward 1536; the default stream: 10 classes
_HIDDEN, _FFN, _LAYERS, _CLASSES = 384, 1536, 6, 10


def load_rows(stream: str = "default", path: str = DATA) -> list[dict[str, Any]]:
    """The extracted evaluations of one stream ("default" or "other"), in file order."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if r["stream"] == stream]


def trainable_params(config: Mapping[str, Any]) -> int:
    """LoRA parameters (A and B of every adapted matrix) plus the linear head, as
    ``evocl.cl.model`` builds them on all-MiniLM-L6-v2 for a 10-class stream."""
    per_rank = 3 * 2 * _HIDDEN                                   # query, key, value
    if config.get("lora_targets", "attention") in ("attention_mlp", "all_linear"):
        per_rank += 2 * (_HIDDEN + _FFN)                         # intermediate, output
    if config.get("lora_targets", "attention") == "all_linear":
        per_rank += 2 * _HIDDEN                                  # attention.output.dense
    half = _LAYERS // 2
    layers = {"all": list(range(_LAYERS)), "bottom_half": list(range(half)),
              "top_half": list(range(half, _LAYERS))}[config.get("lora_layers", "all")]
    r, n = int(config.get("lora_rank", 8)), len(layers)
    schedule = config.get("lora_rank_schedule", "uniform")
    ranks = []
    for pos in range(n):
        step = 0 if schedule == "uniform" or n < 2 else int(round(2.0 * pos / (n - 1) - 1.0 + 1e-9))
        step = -step if schedule == "decreasing" else step
        ranks.append(max(1, r // 2) if step < 0 else (2 * r if step > 0 else r))
    return per_rank * sum(ranks) + _HIDDEN * _CLASSES + _CLASSES


class Features:
    """A configuration as a vector: each parameter's gene of ``space.encode`` (position in
    [0, 1], log scale for log parameters, choice bins for categoricals) when active, -1 when
    inactive (so a tree can tell "replay off" from any replay setting)."""

    def __init__(self, space: Any):
        self.space = space
        self.names = [p.name for p in space.parameters]

    def __call__(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.empty((len(configs), len(self.names)))
        for k, c in enumerate(configs):
            genes = self.space.encode(c)
            out[k] = [g if n in c else -1.0 for g, n in zip(genes, self.names)]
        return out


def _regressor(model: str, seed: int) -> Any:
    if model == "rf":
        from sklearn.ensemble import RandomForestRegressor
        return RandomForestRegressor(n_estimators=200, min_samples_leaf=2, max_features=0.5,
                                     random_state=seed, n_jobs=1)
    if model == "et":
        from sklearn.ensemble import ExtraTreesRegressor
        return ExtraTreesRegressor(n_estimators=200, min_samples_leaf=2, max_features=0.7,
                                   random_state=seed, n_jobs=1)
    if model == "knn":
        from sklearn.neighbors import KNeighborsRegressor
        return KNeighborsRegressor(n_neighbors=7, weights="distance")
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


class FlatForest:
    """A fitted scikit-learn forest as flat arrays, predicting a few rows at a time ~50x
    faster than ``forest.predict`` (whose per-call overhead dominates for one row): every
    tree walked at once, one numpy step per level. Same numbers as the forest (tested)."""

    def __init__(self, forest: Any, proba: bool = False):
        trees = [t.tree_ for t in forest.estimators_]
        n = max(t.node_count for t in trees)
        T = len(trees)
        self.feature = np.zeros((T, n), dtype=np.intp)
        self.threshold = np.zeros((T, n))
        self.left = np.full((T, n), -1, dtype=np.intp)
        self.right = np.full((T, n), -1, dtype=np.intp)
        k = trees[0].value.shape[1] * trees[0].value.shape[2]
        self.value = np.zeros((T, n, k))
        for i, t in enumerate(trees):
            c = t.node_count
            self.feature[i, :c] = np.maximum(t.feature, 0)
            self.threshold[i, :c] = t.threshold
            self.left[i, :c], self.right[i, :c] = t.children_left, t.children_right
            v = t.value.reshape(c, -1)
            if proba:
                v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
            self.value[i, :c] = v
        self.depth = max(t.max_depth for t in trees)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, outputs): the mean over trees (class probabilities when built with proba)."""
        X = np.asarray(X, dtype=np.float32).astype(float)   # sklearn splits on float32 inputs
        T = len(self.feature)
        trees = np.arange(T)[:, None]
        node = np.zeros((T, len(X)), dtype=np.intp)
        rows = np.arange(len(X))[None, :]
        for _ in range(self.depth):
            left = self.left[trees, node]
            leaf = left < 0
            if leaf.all():
                break
            go_left = X[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            nxt = np.where(go_left, left, self.right[trees, node])
            node = np.where(leaf, node, nxt)
        return self.value[trees, node].mean(axis=0)


def _classifier(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(n_estimators=200, min_samples_leaf=5, max_features=0.5,
                                  random_state=seed, n_jobs=1)


def _fast(model: Any) -> Any:
    """Tree ensembles as a FlatForest; other models as they are."""
    return FlatForest(model) if hasattr(model, "estimators_") else model


def targets(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Regression targets of successful rows: (R's 25 entries, row-major, then ACC and
    forgetting weighted by ``GUIDE``; the log seconds of each task). The ACC and forgetting
    columns only steer the trees' splits (with them the matrix predicts both as well as a
    model of each alone: R^2 0.85 and 0.78 instead of 0.82 and 0.72); the simulator reads
    R alone and derives every metric from it, as the real evaluator does."""
    Y = np.array([list(np.ravel(r["R"])) + [GUIDE * metrics.average_accuracy(r["R"]),
                                            GUIDE * metrics.forgetting(r["R"])] for r in rows])
    S = np.log(np.array([r["task_seconds"] for r in rows]))
    return Y, S


class Surrogate:
    """Fitted models of one stream; ``predict`` gives R, task seconds and failure odds."""

    def __init__(self, space: Any, rows: Sequence[Mapping[str, Any]], model: str = "rf",
                 seed: int = 0, noise: float = 0.0):
        self.space, self.model, self.noise = space, model, float(noise)
        self.features = Features(space)
        ok = [r for r in rows if r["status"] == "ok"]
        X = self.features([r["config"] for r in rows])
        X_ok = X[[r["status"] == "ok" for r in rows]]
        Y, S = targets(ok)
        self._reg = _fast(_regressor(model, seed).fit(X_ok, Y))
        self._secs = _fast(_regressor(model, seed).fit(X_ok, S))
        self._clf = FlatForest(_classifier(seed).fit(X, [r["status"] != "ok" for r in rows]),
                               proba=True)
        self.baseline = list(np.mean([r["baseline"] for r in ok], axis=0))
        fails = [r["fail_task"] for r in rows if r["status"] != "ok" and r["fail_task"] is not None]
        counts = np.bincount(fails, minlength=N_TASKS).astype(float)
        self.fail_task_p = counts / counts.sum()
        self._resid_sd = float(np.std(Y[:, :25] - self._reg.predict(X_ok)[:, :25]))
        self.n_failed_rows = sum(r["status"] != "ok" for r in rows)

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """R (n, 5, 5) in [0, 1], task_seconds (n, 5), p_fail (n,)."""
        X = self.features(configs)
        Y = self._reg.predict(X)
        R = np.clip(Y[:, :25], 0.0, 1.0).reshape(-1, N_TASKS, N_TASKS)
        secs = np.exp(self._secs.predict(X))
        p_fail = self._clf.predict(X)[:, 1] if self.n_failed_rows else np.zeros(len(configs))
        return {"R": R, "task_seconds": secs, "p_fail": p_fail}

    def outcome(self, config: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """What one evaluation of ``config`` with training seed ``seed`` gives: R, per-task
        seconds, trainable params and, for a failed one, the task it fails at."""
        pred = self.predict([config])
        R, secs, p_fail = pred["R"][0], pred["task_seconds"][0], float(pred["p_fail"][0])
        rng = np.random.default_rng([int(seed), 7919])
        if self.noise > 0.0:
            R = np.clip(R + rng.normal(0.0, self.noise * self._resid_sd, R.shape), 0.0, 1.0)
        fail_task = None
        if rng.random() < p_fail:
            fail_task = int(rng.choice(N_TASKS, p=self.fail_task_p))
        return {"R": R.tolist(), "task_seconds": secs.tolist(), "fail_task": fail_task,
                "trainable_params": trainable_params(config), "baseline": list(self.baseline)}


def summary(R: Sequence[Sequence[float]], baseline: Sequence[float]) -> dict[str, float]:
    """acc, forgetting, bwt, fwt, plasticity of a square R, as the real evaluator reports."""
    return metrics.summarize(R, baseline)
