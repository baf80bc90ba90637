#!/usr/bin/env bash
# Evaluation under Slurm, one task per GPU (tools/launch/srun.sh).
#   GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/launch/srun.sh" "$1" "$2" test.py "$3" "$4" \
    --launcher slurm "${@:5}"
