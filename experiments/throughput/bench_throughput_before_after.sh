#!/bin/bash
# The CPU before/after run of experiments/throughput/results/throughput_cpu_{before,after}.json, as run:
#   git worktree add --detach /tmp/tp_before 8aacda7    # main before the throughput work
#   cp experiments/throughput/bench_throughput.py /tmp/tp_before/experiments/
#   git worktree add --detach /tmp/tp_after b322a8f     # the throughput branch
#   ln -s /work/main/.venv /tmp/tp_before/.venv; ln -s /work/main/.venv /tmp/tp_after/.venv
#   flock /work/cpu.lock experiments/throughput/bench_throughput_before_after.sh
# then the two JSON files copied from /tmp/tp_runs/ to experiments/throughput/results/.
set -x
mkdir -p /tmp/tp_runs
date; uptime
cd /tmp/tp_before && PYTHONPATH=/tmp/tp_before nice -n 5 .venv/bin/python experiments/throughput/bench_throughput.py \
  --preset cpu --workers 2 --limit 11 --label before \
  --note "flock /work/cpu.lock nice -n 5; tree: main 8aacda7 (git worktree) + this script" \
  --out /tmp/tp_runs/throughput_cpu_before.json > /tmp/tp_runs/before.log 2>&1
echo "before rc=$?"; date; uptime
cd /tmp/tp_after && PYTHONPATH=/tmp/tp_after nice -n 5 .venv/bin/python experiments/throughput/bench_throughput.py \
  --preset cpu --workers 2 --limit 11 --label after \
  --note "flock /work/cpu.lock nice -n 5; tree: throughput b322a8f (git worktree)" \
  --compare /tmp/tp_runs/throughput_cpu_before.json \
  --out /tmp/tp_runs/throughput_cpu_after.json > /tmp/tp_runs/after.log 2>&1
echo "after rc=$?"; date; uptime
