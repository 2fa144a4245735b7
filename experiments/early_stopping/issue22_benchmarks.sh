#!/bin/sh
# The benchmarks of issue 22, one after the other (run under the shared heavy lock):
#   flock /work/wt/heavy.lock nice -n 10 sh experiments/early_stopping/issue22_benchmarks.sh
# Results under experiments/early_stopping/results/; what they measured: docs/early-stopping.md.
set -e
export OMP_NUM_THREADS=1 PYTHONPATH=.
PY=${PY:-/work/main/.venv/bin/python}
R=experiments/early_stopping/results
# 1. model-based stopping replayed on the GPU journals (asha and the 2-task baseline alongside)
$PY experiments/early_stopping/bench_early_stop_replay.py --seeds 20 --workers 16 --model 'rungs=[2]' \
    --out $R/early_stop_replay_variants/model.json
$PY experiments/early_stopping/bench_early_stop_replay.py --seeds 20 --workers 16 --model 'rungs=[2]' \
    --pool 'wn-*.jsonl' --exclude wn-joint.jsonl --out $R/early_stop_replay_variants/model_other_stream.json
# 2. cost-aware proposals and model-based stopping with the default engine (surrogate benchmark)
$PY experiments/surrogate_search/bench_surrogate.py --seeds 10 --workers 8 --algorithms sa-nsga2,sa-nsga2@cost,optuna-tpe \
    --budgets 50,100 --modes time --early-stop none,model --out $R/surrogate_bench_w8_issue22.json
# 3. the cheap pass replayed on its MiniLM measurement
$PY experiments/early_stopping/bench_low_fidelity_replay.py --data $R/low_fidelity_ranking.jsonl --seeds 20 \
    --budget 4 --out $R/low_fidelity_replay.json   # budget: about a third of the measured pool (10)
# 4. a short real search per arm on this machine (tiny backbone, synthetic stream)
$PY experiments/early_stopping/bench_fidelity_real.py --backbone tiny --stream synthetic --seeds 0,1 --wall 150 \
    --out $R/fidelity_real_tiny.json
