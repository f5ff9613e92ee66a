#!/usr/bin/env bash
# One device call: install the carried Snakemake (and airbench) wheels, rebuild cifar10.npz from
# its parts, optionally time airbench94 against our fast CNN, run a CIFAR-10 study through
# Snakemake, build its report, print per-stage times and the extrapolation to N=128, and put the
# tables, figures, logs and report under $OUT. The study reads the data from /root/cifar10.npz
# (rebuilt from the carried parts; it overrides the study's dataset.path).
#
#   STUDY=config/studies/cifar10-gpu.yaml   the overlay on config/cifar10.yaml (default: the reduced
#                                           study of the fast-GPU issue, N=32, 3 methods + controls)
#   STUDY=                                  (empty) config/cifar10.yaml as shipped, only dataset.path set
#   GPU_JOBS=2                              cap the model jobs at once (--resources gpu=2); unset: the
#                                           default profile's own placement (jobs_per_gpu a GPU)
#   AIRBENCH=1                              first time airbench94 and our recipe on 25k halves
#   REF_ARGS="--variant e12:epochs=12"      more arguments to airbench_ref.py (other recipes to time)
#   WORKFLOW_LIMIT=480                      seconds Snakemake may run (a rerun resumes where it stopped;
#                                           past one call's 10 minutes, start this with setsid nohup
#                                           in a copy of the checkout and read its OUT in later calls)
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
STUDY=${STUDY-config/studies/cifar10-gpu.yaml}
GPU_JOBS=${GPU_JOBS:-}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# one pip call: a second --target --upgrade would replace the first one's bin/ (snakemake)
# (without .whl: installed by an earlier call of this held machine, as a long run's last call carries the data)
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl $(ls .abw/airbench-*.whl 2>/dev/null)
fi
export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-} PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
[ -f /root/cifar10.npz ] || cat /root/parts/cifar10.npz.part_* > /root/cifar10.npz
echo "8683afb7f9f44b57934bfaa6d00b27bedd9711b49b686bb037107d5091a13529  /root/cifar10.npz" | sha256sum -c
log=$OUT/bench.txt  # what comes back: bench.txt, snakemake.log, report.html, results.tar.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$log"
if [ -n "${AIRBENCH:-}" ]; then
  python3 benchmarks/airbench_ref.py --data /root/cifar10.npz --repeats "${REPEATS:-4}" ${REF_ARGS:-} 2>&1 | grep -v INFO | tee -a "$log"
fi
cfg=(--configfile config/cifar10.yaml $STUDY --config "dataset={path: /root/cifar10.npz}")
r=$(python3 -c "import yaml,sys; c={**yaml.safe_load(open('config/cifar10.yaml')), **(yaml.safe_load(open('$STUDY')) if '$STUDY' else {})}; print(c.get('results_dir','results') + '/' + c['experiment'])")
cap=(); [ -n "$GPU_JOBS" ] && cap=(--resources gpu="$GPU_JOBS")
t0=$(date +%s)
# stop Snakemake in time for the tables to come back (a rerun resumes where it stopped)
timeout "${WORKFLOW_LIMIT:-480}" snakemake --workflow-profile profiles/default "${cfg[@]}" "${cap[@]}" \
  > "$OUT/snakemake.log" 2>&1 || { echo "snakemake stopped or failed:"; tail -40 "$OUT/snakemake.log"; }
wall=$(( $(date +%s) - t0 ))
echo "workflow wall time: $wall s (GPU_JOBS=${GPU_JOBS:-default profile}, ${STUDY:-config/cifar10.yaml as shipped})" | tee -a "$log"
grep -h "running on GPU" "$r"/logs/*/*.log "$r"/tuning/logs/*/*.log 2>/dev/null | sed 's/.*running on //' | sort | uniq -c | tee -a "$log" || true
python3 benchmarks/stage_times.py "$r" --wall "$wall" 2>&1 | tee -a "$log" || true
if [ -d "$r/tuning/benchmarks" ]; then  # the tuning stage's own jobs (config `tune`)
  echo "tuning stage:" | tee -a "$log"
  python3 benchmarks/stage_times.py "$r/tuning" 2>&1 | tee -a "$log" || true
fi
snakemake --workflow-profile profiles/default "${cfg[@]}" --report "$r/report.html" >> "$OUT/snakemake.log" 2>&1 \
  && cp "$r/report.html" "$OUT/" || tail -20 "$OUT/snakemake.log"
tar czf "$OUT/results.tar.gz" "$r/tables" "$r/figures" "$r/logs" "$r/benchmarks" "$r/report" \
  $(ls -d "$r/tuning/tables" "$r/tuning/logs" "$r/tuning/benchmarks" 2>/dev/null) 2>/dev/null || true
cat "$r/tables/summary.csv" 2>/dev/null | cut -d, -f1-4 || true
