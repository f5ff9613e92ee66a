#!/usr/bin/env bash
# One device call: install the carried Snakemake wheels, rebuild cifar10.npz from its parts,
# time both networks on a 25k half, then run the reduced CIFAR-10 study through Snakemake.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-} PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
[ -f /root/cifar10.npz ] || cat /root/parts/cifar10.npz.part_* > /root/cifar10.npz
echo "8683afb7f9f44b57934bfaa6d00b27bedd9711b49b686bb037107d5091a13529  /root/cifar10.npz" | sha256sum -c
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
[ -n "${SKIP_SPEED:-}" ] || python3 benchmarks/train_speed.py config/cifar10.yaml --data /root/cifar10.npz --networks fastcnn resnet18 --repeats ${REPEATS:-2} 2>&1 | grep -v INFO | tee $OUT/train_speed.txt
t0=$(date +%s)
# stop Snakemake in time for the tables to come back (a rerun resumes where it stopped)
timeout ${WORKFLOW_LIMIT:-530} snakemake --workflow-profile profiles/default --configfile config/cifar10.yaml benchmarks/cifar10-gpu.yaml > $OUT/snakemake.log 2>&1 || { tail -50 $OUT/snakemake.log; }
echo "workflow wall time: $(( $(date +%s) - t0 )) s" | tee -a $OUT/train_speed.txt
r=results/cifar10-gpu
cp $r/tables/summary.csv $OUT/ 2>/dev/null || true
tar czf $OUT/results.tar.gz $r/tables $r/figures $r/logs $r/benchmarks $r/plan 2>/dev/null || true
cat $r/tables/summary.csv 2>/dev/null || true
