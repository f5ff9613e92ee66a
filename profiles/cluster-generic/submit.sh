#!/usr/bin/env bash
# sbatch --parsable with the profile's options; the last argument is Snakemake's job script.
# --gpus=0 is dropped (CPU jobs must not ask for a GPU), an empty partition is left to the default.
set -euo pipefail
args=()
for a in "$@"; do
  case "$a" in
    --gpus=0|--gpus=|--partition=) ;;
    --output=*) mkdir -p "$(dirname "${a#--output=}")"; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
exec sbatch --parsable "${args[@]}"
