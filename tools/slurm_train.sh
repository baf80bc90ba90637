#!/usr/bin/env bash
# Training under Slurm, one task per GPU (tools/launch/srun.sh).
#   GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (default 8),
# CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [train.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/launch/srun.sh" "$1" "$2" train.py "$3" \
    --launcher slurm "${@:4}"
