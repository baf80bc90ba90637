#!/usr/bin/env bash
# Distributed evaluation with torchrun (tools/launch/torchrun.sh).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/launch/torchrun.sh" "$3" test.py "$1" "$2" \
    --launcher pytorch "${@:4}"
