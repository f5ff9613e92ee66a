#!/usr/bin/env bash
# One device call: the reduced IMDB study of issue #7 (config/studies/imdb-gpu.yaml over
# config/imdb.yaml: N=16, a ~5.3 M-parameter GPT-2-style base pretrained from scratch, two LM
# methods plus the controls) end to end through Snakemake on one GPU, then what it measured
# (benchmarks/imdb_summary.py): N, model size, tokens, time per fine-tuning and per unlearning run,
# the shadow models' held-out perplexity, the summary table. Results come back under $OUT.
#
# Before the call, here:  python benchmarks/gpu/imdb_subset.py   (writes .parts/imdb-small.parquet, 8 MB)
# Carry: .whl (the Snakemake wheels, as for benchmarks/gpu/gpu_run.sh) and .parts. The study reads
# .parts/imdb-small.parquet (it overrides the study's dataset.path).
#
#   STUDY=config/studies/imdb-gpu.yaml   the overlay on config/imdb.yaml
#   GPU_JOBS=2                           model jobs sharing the GPU at once (a small model leaves it idle)
#   WORKFLOW_LIMIT=420                   seconds Snakemake may run (a rerun resumes where it stopped)
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
STUDY=${STUDY:-config/studies/imdb-gpu.yaml}
GPU_JOBS=${GPU_JOBS:-2}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
test -f .parts/imdb-small.parquet || { echo "no .parts/imdb-small.parquet: run python benchmarks/gpu/imdb_subset.py and carry .parts"; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-} PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
log=$OUT/bench.txt  # what comes back: bench.txt, snakemake.log, summary.csv, report.html, results.tar.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log"
python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)" | tee -a "$log"
cfg=(--configfile config/imdb.yaml "$STUDY" --config "dataset={path: .parts/imdb-small.parquet}")
r=$(python3 -c "import yaml; c={**yaml.safe_load(open('config/imdb.yaml')), **yaml.safe_load(open('$STUDY'))}; print(c.get('results_dir','results') + '/' + c['experiment'])")
t0=$(date +%s)
# stop Snakemake in time for the tables to come back (a rerun resumes where it stopped)
status=0
timeout "${WORKFLOW_LIMIT:-420}" snakemake --workflow-profile profiles/default "${cfg[@]}" --resources gpu="$GPU_JOBS" \
  > "$OUT/snakemake.log" 2>&1 || status=$?
wall=$(( $(date +%s) - t0 ))
[ "$status" = 0 ] || { echo "snakemake stopped (124: the time limit) or failed: $status"; tail -40 "$OUT/snakemake.log"; } | tee -a "$log"
echo "workflow wall time: $wall s (GPU_JOBS=$GPU_JOBS, $STUDY)" | tee -a "$log"
python3 benchmarks/imdb_summary.py "$r" --wall "$wall" 2>&1 | tee -a "$log" || true
cp "$r/tables/summary.csv" "$OUT/" 2>/dev/null || true
tar czf "$OUT/results.tar.gz" "$r/tables" "$r/figures" "$r/logs" "$r/benchmarks" "$r/report" "$r/base/umia.json" 2>/dev/null || true
if [ "$status" = 0 ]; then  # the self-contained report (figures embedded), ~20 s
  timeout 90 snakemake --workflow-profile profiles/default "${cfg[@]}" --report "$r/report.html" >> "$OUT/snakemake.log" 2>&1 \
    && cp "$r/report.html" "$OUT/" || echo "report not built (see snakemake.log)"
fi
