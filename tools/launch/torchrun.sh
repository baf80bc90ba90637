#!/usr/bin/env bash
# torchrun for tools/dist_train.sh and tools/dist_test.sh:
#   bash tools/launch/torchrun.sh NUM_PROCS_PER_NODE SCRIPT [SCRIPT args]
# SCRIPT is a file of tools/. Multi-node: set NNODES, NODE_RANK, MASTER_ADDR
# (and PORT) on every node. Without a GPU the processes run on the CPU over
# gloo.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON=${PYTHON:-python}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --nproc_per_node="$NPROC" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    "$ROOT/tools/$SCRIPT" "$@"
