#!/usr/bin/env bash
# One device call (no data carried): a model job's start-up part by part under cuDNN's autotuner
# and under its heuristics, each method's time per model, and the training throughput of 1-4
# processes sharing the card (what `jobs_per_gpu` should be). Synthetic data of CIFAR-10's shapes:
# speed does not depend on the pixels.
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
sp --models 2 > /dev/null  # prepares the data once (not timed) and fills the first-process caches
M=finetune,gradient_ascent,neggrad_plus,random_labels,l1_sparse,scrub,salun,per_example_stop
for mode in benchmark heuristic; do
  echo "=== cuDNN $mode"; sp --cudnn "$mode" --models 3 --unlearn "$M"
  echo "=== cuDNN $mode, again"; sp --cudnn "$mode" --models 3
done
for k in 1 2 3 4; do
  echo "=== $k processes sharing the card, 6 models each (${CUDNN:-benchmark})"
  t0=$(date +%s%N)
  for i in $(seq "$k"); do sp --cudnn "${CUDNN:-benchmark}" --models 6 > "/root/share-$k-$i.txt" & done
  wait
  echo "wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  grep -h "steady model" /root/share-$k-*.txt
done
