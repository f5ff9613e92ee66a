#!/usr/bin/env bash
# How long Snakemake takes to build the DAG of a paper-scale experiment and list its jobs:
# N=256 originals in shards of 16, eight unlearning methods plus the controls.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=$(mktemp --suffix=.yaml)
cat > "$cfg" <<YAML
experiment: dag-scale
results_dir: $(mktemp -d)
n_models: 256
shard_size: ${SHARD_SIZE:-16}
methods: [finetune, gradient_ascent, neggrad_plus, random_labels, l1_sparse, scrub, salun, "gradient_ascent@lr=0.05"]
YAML
start=$(date +%s.%N)
snakemake -n --quiet rules --configfile config/cifar10.yaml "$cfg" > /tmp/dag-scale.txt 2>&1
end=$(date +%s.%N)
grep -E "^(total|train|unlearn|gather|attacks)" /tmp/dag-scale.txt | awk "!seen[\$0]++"
echo "snakemake -n: $(echo "$end - $start" | bc) s"
rm -f "$cfg"
