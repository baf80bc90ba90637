#!/usr/bin/env bash
# Distributed training with torchrun (tools/launch/torchrun.sh).
#   bash tools/dist_train.sh CONFIG NUM_PROCS_PER_NODE [train.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
# Without a GPU the processes run on the CPU over gloo.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS_PER_NODE [train.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/launch/torchrun.sh" "$2" train.py "$1" \
    --launcher pytorch "${@:3}"
