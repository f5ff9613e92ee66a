#!/usr/bin/env bash
# One device call (no data carried): what a model job's first model spends its extra seconds on.
# torch.profiler over the first training of a fresh process (the top ops by CPU time), then the
# start-up parts with cuDNN's autotuner and with its heuristics, two processes each (about 2 min);
# then 1, 3 and 6 processes unlearning at once (about 3 min) (what jobs_per_gpu gains for the launch-bound methods).
# Synthetic data of CIFAR-10's shapes: speed does not depend on the pixels.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 - <<'PY'
import numpy as np
r = np.random.default_rng(0)
np.savez("/root/synth.npz", x_train=r.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
         y_train=r.integers(0, 10, 50000), x_test=r.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
         y_test=r.integers(0, 10, 10000))
PY
sp() { python3 benchmarks/startup_parts.py --dataset-path /root/synth.npz --work /root/sp "$@" 2>&1 | grep -v " INFO "; }
echo "=== the first process on the machine, profiled"; sp --models 2 --profile-first
for mode in benchmark heuristic; do
  echo "=== cuDNN $mode"; sp --cudnn "$mode" --models 3
  echo "=== cuDNN $mode, again"; sp --cudnn "$mode" --models 3
done
M=${SHARE_METHODS:-finetune,gradient_ascent,scrub}
for k in 1 3 6; do
  echo "=== $k processes sharing the card, each training 4 models and unlearning them by $M"
  t0=$(date +%s%N)
  for i in $(seq "$k"); do sp --models 4 --unlearn "$M" > "/root/ushare-$k-$i.txt" & done
  wait
  echo "wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  grep -h "^unlearn" /root/ushare-$k-*.txt | sort
done
