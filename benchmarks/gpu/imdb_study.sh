#!/usr/bin/env bash
# The text study of issue 15 on one GPU, end to end through Snakemake with the default profile.
# Longer than one device call: start it with setsid nohup and read $OUT/bench.txt in later calls.
#
#   1. the base: config/imdb.yaml's GPT-2-style model pretrained from scratch on the test split's
#      reviews (experiment imdb-base, rule pretrain_base), its size and held-out perplexity;
#   2. per shadow model, LoRA against full fine-tuning of that base and of a GPT-2 124M shape
#      (benchmarks/lora_speed.py);
#   3. shadow-model settings against saturation: a grid at N=$N_GRID, controls only, each point an
#      experiment over the same base (lm.base_model), run side by side; benchmarks/imdb_grid.py
#      picks the one whose `none` U-LiRA accuracy is in 0.7-0.9, or one more point between the two
#      full fine-tuning settings that bracket the band;
#   4. the study: the picked experiment grown to N=$N_STUDY with config/imdb.yaml's methods (its
#      finished models reused), then the claims (benchmarks/claims.py), the summary and the report.
#
# Carry .whl (../shared/tools/device-wheels .whl; the device image has peft) and the reviews
# ($DATA, default .parts/imdb.parquet: a copy of ../shared/data/imdb.parquet).
#   EXTRA=file.yaml   an overlay on config/imdb.yaml for every experiment (a CPU smoke run: tiny sizes)
#   SHIPPED=1         only the shipped study: config/imdb.yaml as it is (experiment imdb, its own base),
#                     then the summary, the claims and the report (steps 1-3 skipped)
#   GROW="m@lr=x ..." with SHIPPED: then the same experiment grown by these method entries (its
#                     models reused), summary and claims again (results-grown.tar.gz)
set -uo pipefail
cd "$(dirname "$0")/../.."  # the repository root
DATA=${DATA:-.parts/imdb.parquet}
OUT=${OUT:-/tmp/out}
N_GRID=${N_GRID:-32}
N_STUDY=${N_STUDY:-64}
EXTRA=${EXTRA:-}
mkdir -p "$OUT" results
log=$OUT/bench.txt
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-} PATH=/tmp/site/bin:$PATH
fi
export PYTHONUNBUFFERED=1
say() { echo "[$(date +%T)] $*" | tee -a "$log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee -a "$log"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$log"
smk() {  # smk NAME TARGET...: one experiment's run over config/imdb.yaml, EXTRA and results/NAME.yaml
  local name=$1; shift
  snakemake "$@" --workflow-profile profiles/default --configfile config/imdb.yaml $EXTRA "results/$name.yaml" \
    --config "dataset={path: $DATA}" >> "$OUT/snakemake-$name.log" 2>&1
}
T0=$(date +%s)
rc=0  # the exit status: 1 when the study failed (what was measured still comes back)
if [ -n "${SHIPPED:-}" ]; then
  echo "experiment: imdb" > results/imdb.yaml  # no change to the shipped config
  names=(imdb); name=imdb
  say "the shipped study: config/imdb.yaml"
  smk imdb || { rc=1; say "the study failed"; tail -40 "$OUT/snakemake-imdb.log" | tee -a "$log"; }
  say "study wall time $(( $(date +%s) - T0 )) s"
  python3 benchmarks/imdb_summary.py results/imdb 2>&1 | tee -a "$log"
  python3 benchmarks/claims.py results/imdb 2>&1 | tee -a "$log"
  smk imdb --report results/imdb/report.html && cp results/imdb/report.html "$OUT/" || say "no report"
  tar czf "$OUT/results.tar.gz" results/imdb/tables results/imdb/logs results/imdb/benchmarks results/imdb/figures results/imdb/base/umia.json 2>/dev/null
  if [ -n "${GROW:-}" ] && [ $rc = 0 ]; then
    T1=$(date +%s)
    python3 - "$GROW" <<'PY'
import sys, yaml
shipped = yaml.safe_load(open("config/imdb.yaml"))["methods"]
yaml.safe_dump({"experiment": "imdb", "methods": shipped + sys.argv[1].split()}, open("results/imdb.yaml", "w"))
PY
    say "grown by: $GROW"
    smk imdb || { rc=1; say "the growth failed"; tail -40 "$OUT/snakemake-imdb.log" | tee -a "$log"; }
    say "growth wall time $(( $(date +%s) - T1 )) s"
    python3 benchmarks/imdb_summary.py results/imdb 2>&1 | tee -a "$log"
    python3 benchmarks/claims.py results/imdb 2>&1 | tee -a "$log"
    tar czf "$OUT/results-grown.tar.gz" results/imdb/tables results/imdb/logs 2>/dev/null
  fi
  exit $rc
fi

# 1. the base
printf 'experiment: imdb-base\nmethods: []\n' > results/imdb-base.yaml
say "pretraining the base (experiment imdb-base)"
smk imdb-base results/imdb-base/base results/imdb-base/plan/candidates.parquet || { say "pretraining failed"; tail -30 "$OUT/snakemake-imdb-base.log" | tee -a "$log"; exit 1; }
say "base: $(cat results/imdb-base/base/umia.json | tr -d '\n ')"
grep -h "base model:" results/imdb-base/logs/pretrain_base.log | tee -a "$log"

# 2. LoRA against full fine-tuning, per shadow model
say "LoRA against full fine-tuning (benchmarks/lora_speed.py)"
python3 benchmarks/lora_speed.py results/imdb-base ${LORA_ARGS:---gpt2-124m} 2>&1 | grep -v " INFO " | tee -a "$log"

# 3. the grid: NAME|overlay (train settings); each over the same base, controls only
grid=(
  "imdb-f3e6|train: {epochs: 1, lr: 0.000003}"
  "imdb-f1e5|train: {epochs: 1, lr: 0.00001}"
  "imdb-f3e5|train: {epochs: 1, lr: 0.00003}"
  "imdb-f1e4|train: {epochs: 1, lr: 0.0001}"
  "imdb-f3e4|train: {epochs: 1, lr: 0.0003}"
  "imdb-l1e3|train: {epochs: 1, lr: 0.001, adapter: {kind: lora, rank: 8, alpha: 16}}"
)
point() {  # point NAME OVERLAY: write results/NAME.yaml
  printf 'experiment: %s\nn_models: %s\nmethods: []\njobs_per_gpu: %s\nlm: {base_model: results/imdb-base/base}\n%s\n' \
    "$1" "$N_GRID" "${JOBS_PER_GPU:-6}" "$2" > "results/$1.yaml"
}
names=()
for g in "${grid[@]}"; do
  name=${g%%|*}; point "$name" "${g#*|}"; names+=("$name")
done
say "grid: ${names[*]} (N=$N_GRID, side by side)"
for name in "${names[@]}"; do smk "$name" "results/$name/tables/summary.csv" & done
wait
say "grid done"
pick=$(python3 benchmarks/imdb_grid.py $(printf 'results/%s ' "${names[@]}") --pick 2>&1 | tee -a "$log" | tail -1)
if [[ $pick == between* ]]; then
  read -r _ a b <<< "$pick"
  lr=$(python3 -c "import yaml, math; f=lambda n: yaml.safe_load(open(f'results/{n}.yaml'))['train']['lr']; print(repr(float(f'{math.sqrt(f(\"$a\") * f(\"$b\")):.2g}')))")
  point imdb-mid "train: {epochs: 1, lr: $lr}"
  say "no setting in the band: one more between $a and $b (lr $lr)"
  smk imdb-mid results/imdb-mid/tables/summary.csv
  names+=(imdb-mid)
  pick=$(python3 benchmarks/imdb_grid.py $(printf 'results/%s ' "${names[@]}") --pick 2>&1 | tee -a "$log" | tail -1)
fi
[[ $pick == results/* ]] || { say "no pick ($pick): the study runs on the closest"; pick=results/$(python3 -c "
import sys, os, pandas as pd
done = [n for n in sys.argv[1:] if os.path.exists(f'results/{n}/tables/summary.csv')] or sys.exit('no grid point finished')
rows = [(abs(pd.read_csv(f'results/{n}/tables/summary.csv').set_index(['method','attack']).loc[('none','ulira'),'accuracy'] - 0.8), n) for n in done]
print(min(rows)[1])" "${names[@]}") || exit 1; }
name=$(basename "$pick")
say "picked $name: $(tail -n +5 "results/$name.yaml" | tr '\n' ' ')"

# 4. the study: the picked experiment grown to N_STUDY with config/imdb.yaml's methods
python3 - "results/$name.yaml" "$N_STUDY" <<'PY'
import sys, yaml
path, n = sys.argv[1], int(sys.argv[2])
point = yaml.safe_load(open(path))
point.pop("jobs_per_gpu", None)  # the study runs at the default profile's sharing
point |= {"n_models": n, "methods": yaml.safe_load(open("config/imdb.yaml"))["methods"]}
yaml.safe_dump(point, open(path, "w"), sort_keys=False)
PY
say "study: $name at N=$N_STUDY, methods $(python3 -c "import yaml; print(yaml.safe_load(open('results/$name.yaml'))['methods'])")"
t1=$(date +%s)
smk "$name" || { rc=1; say "the study failed"; tail -40 "$OUT/snakemake-$name.log" | tee -a "$log"; }
say "study wall time $(( $(date +%s) - t1 )) s (all: $(( $(date +%s) - T0 )) s)"
python3 benchmarks/imdb_summary.py "results/$name" 2>&1 | tee -a "$log"
python3 benchmarks/claims.py "results/$name" 2>&1 | tee -a "$log"
python3 benchmarks/stage_times.py "results/$name" 2>&1 | tee -a "$log" || true
smk "$name" --report "results/$name/report.html" && cp "results/$name/report.html" "$OUT/" || say "no report"
tar czf "$OUT/results.tar.gz" results/*.yaml results/imdb-base/base/umia.json \
  $(for n in "${names[@]}"; do echo "results/$n/tables results/$n/logs results/$n/benchmarks"; done) \
  "results/$name/figures" 2>/dev/null
[ "$(stat -c %s "$OUT/results.tar.gz")" -lt 15000000 ] || tar czf "$OUT/results.tar.gz" results/*.yaml "results/$name/tables" $(for n in "${names[@]}"; do echo "results/$n/tables/summary.csv"; done)
say "done (exit $rc)"
exit $rc
