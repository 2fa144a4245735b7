"""Is a row's encoder output independent of the batch it sits in? (issue 13: the premise of
frozen-prefix caching in training, where a cached row would be reused inside other batches.)

The pristine MiniLM encoder, one thread, the `default` stream's training rows at 32 tokens:
the hidden states of four rows are computed inside a reference batch of 16 rows and inside
random batches of 8-40 rows (other rows, other positions), and compared to the bit after
layer 3 (what a `top_half` candidate's adapters would receive) and after the last layer.

    PYTHONPATH=. .venv/bin/python experiments/throughput/check_row_independence.py
        # -> experiments/throughput/results/row_independence.json
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from evocl.cl.backbone import load_backbone
    from evocl.cl.evaluator import prepare
    from evocl.storage.atomic import atomic_write_text
    from evocl.streams import load_stream

    backbone = load_backbone("minilm")
    data = prepare(load_stream("default", seed=0), backbone, 32, 32, 40)
    train = data.train

    def encode(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask, _, _ = train.batch(torch.tensor(rows))
        with torch.no_grad():
            out = backbone.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[3], out.last_hidden_state

    probe = [0, 3, 7, 11]
    ref3, ref_last = encode(list(range(16)))
    checks = []
    for trial in range(20):
        rng = random.Random(trial)
        n = rng.choice([8, 12, 16, 24, 32, 40])
        rows = rng.sample(range(16, 240), n - len(probe))
        for r in probe:
            rows.insert(rng.randrange(len(rows) + 1), r)
        h3, last = encode(rows)
        for r in probe:
            p = rows.index(r)
            checks.append({"trial": trial, "batch": n, "row": r, "position": p,
                           "layer3_equal": bool(torch.equal(h3[p], ref3[r])),
                           "last_equal": bool(torch.equal(last[p], ref_last[r])),
                           "layer3_max_abs_diff": float((h3[p] - ref3[r]).abs().max())})
    summary = {"checks": len(checks),
               "layer3_bit_identical": sum(c["layer3_equal"] for c in checks),
               "last_layer_bit_identical": sum(c["last_equal"] for c in checks),
               "lengths_in_tasks_0_2": sorted({int(x) for x in train.lengths[:720].tolist()})}
    atomic_write_text(ROOT / "experiments" / "throughput" / "results" / "row_independence.json", json.dumps(
        {"benchmark": "row_independence", "date": time.strftime("%Y-%m-%d %H:%M"),
         "command": "PYTHONPATH=. .venv/bin/python experiments/throughput/check_row_independence.py",
         "torch": torch.__version__, "summary": summary, "checks": checks}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
