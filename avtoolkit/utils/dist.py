"""Distributed set-up that also works on machines without a GPU.

mmengine 0.10.7 pins every process to a CUDA device while initialising the
process group (``torch.cuda.set_device``), which fails on a CPU-only machine,
and its DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for
CPU modules.  :func:`prepare_distributed` initialises a ``gloo`` process group
itself on such machines (mmengine then sees an initialised group and skips its
own) and configures the wrapper with ``device_ids=None``.  With CUDA present
mmengine's NCCL path is used as is.

Collective timeout: ``env_cfg.dist_cfg.timeout`` (seconds, default
:data:`DEFAULT_COLLECTIVE_TIMEOUT_S`; ``--dist-timeout`` on the command
line) bounds how long a rank waits in a collective operation for the others.
torch's own default (30 min for gloo, 10 min for NCCL) keeps a job with one
frozen rank waiting idle that long.  :func:`report_collective_timeouts`
turns the resulting error into :class:`CollectiveTimeoutError`, which names
the knob and, on gloo, the ranks that did not answer.
"""
import contextlib
import os
import re
import subprocess
from datetime import timedelta
from typing import Iterator, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

# Seconds a rank waits in a collective operation before the job fails.
DEFAULT_COLLECTIVE_TIMEOUT_S = 600
# A side gloo group in which, after a timeout, the ranks that still run
# find out which ones do not answer (torch's monitored barrier).
_REPORT_GROUP = None


class CollectiveTimeoutError(RuntimeError):
    """A collective operation timed out: another rank is frozen, dead or
    much slower."""


def collective_timeout(cfg: Config) -> float:
    """``env_cfg.dist_cfg.timeout`` of ``cfg``, checked; the default where
    unset."""
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    timeout = dist_cfg.get('timeout', DEFAULT_COLLECTIVE_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout > 0:
        raise ValueError(f'env_cfg.dist_cfg.timeout must be a positive number '
                         f'of seconds, got {timeout!r}')
    return float(timeout)


def _slurm_env(port: int = None) -> None:
    """Export torch.distributed's variables from Slurm's, as mmengine does."""
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)


def prepare_distributed(cfg: Config, launcher: str) -> None:
    """Make ``cfg`` runnable under ``launcher`` on this machine (in place).

    Args:
        cfg: the full config; ``cfg.launcher`` is set.
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.
    """
    global _REPORT_GROUP
    cfg.launcher = launcher
    if launcher == 'none':
        return
    # ConfigDict.setdefault stores a converted copy of a new default, so the
    # missing levels are assigned first and looked up afterwards.
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    timeout = collective_timeout(cfg)
    dist_cfg['timeout'] = timeout  # mmengine passes it to torch (NCCL)
    if torch.cuda.is_available():
        return
    dist_cfg['backend'] = 'gloo'
    if launcher == 'slurm':
        _slurm_env(dist_cfg.get('port'))
    elif launcher != 'pytorch':
        raise ValueError(f'Unsupported launcher "{launcher}" on a machine '
                         'without CUDA; use "pytorch" (torchrun) or "slurm".')
    if not torch_dist.is_initialized():
        for name in ('RANK', 'WORLD_SIZE'):
            if name not in os.environ:
                raise RuntimeError(
                    f'--launcher {launcher}: the environment variable {name} '
                    'is not set; start the job with tools/dist_train.sh '
                    '(torchrun) or tools/slurm_train.sh, or drop --launcher '
                    'for a single process')
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            timeout=timedelta(seconds=timeout))
        _REPORT_GROUP = torch_dist.new_group(
            backend='gloo', timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # CPU modules take no device ids; FSDP-style wrappers ignore the key.
    if 'DistributedDataParallel' in str(wrapper.get('type', '')):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


_TIMEOUT_TEXT = re.compile(r'timed? ?out|timeout', re.IGNORECASE)


def _unanswering_ranks(wait: float) -> Optional[str]:
    """Which ranks do not answer (torch's monitored barrier in the side
    group, gloo only); None when that cannot be told."""
    if _REPORT_GROUP is None:
        return None
    try:
        torch_dist.monitored_barrier(group=_REPORT_GROUP,
                                     timeout=timedelta(seconds=wait),
                                     wait_all_ranks=True)
    except RuntimeError as err:
        found = re.search(r'Ranks? ([\d, ]+) failed to pass', str(err))
        return found.group(1).strip() if found else None
    return None


@contextlib.contextmanager
def report_collective_timeouts(cfg: Config) -> Iterator[None]:
    """Turn a collective timeout inside the block into a
    :class:`CollectiveTimeoutError` that names the knob and, where torch can
    tell (gloo), the ranks that did not answer."""
    try:
        yield
    except RuntimeError as err:
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and _TIMEOUT_TEXT.search(str(err))):
            raise
        timeout = collective_timeout(cfg)
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
        ranks = _unanswering_ranks(min(timeout, 30.0))
        who = (f'rank(s) {ranks} did not answer' if ranks else
               'another rank did not answer (frozen, dead or much slower)')
        raise CollectiveTimeoutError(
            f'rank {rank} of {world}: a collective operation waited more '
            f'than {timeout:.0f} s and {who}. Check that process (a stopped '
            'or swapping process, a dead node, a data loader stuck on a '
            'file); env_cfg.dist_cfg.timeout (or --dist-timeout SECONDS) '
            f'sets the wait. Original error: {err}') from err


def finish_distributed() -> None:
    """Tear the process group down once every rank has finished.

    Called by the entry points after a successful ``runner.train()`` or
    ``runner.test()``.  Leaving the group to interpreter shutdown lets one
    rank exit while another still has gloo or NCCL threads talking to it;
    that occasionally aborts the slower rank (``terminate called without an
    active exception``) after the work itself has succeeded.  The barrier
    makes every rank reach the end first.  Nothing happens when no group
    is initialised (single-process runs).
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    torch_dist.barrier()
    torch_dist.destroy_process_group()


def make_on_local_leader(make, done_file: str, what: str,
                         poll_seconds: float = 2.0,
                         timeout: float = 3600.0) -> None:
    """Run ``make()`` in the process with ``LOCAL_RANK`` 0; every other
    process of the node waits until ``done_file`` exists (written last by
    ``make``), failing with ``TimeoutError`` after ``timeout`` seconds.

    Used to generate a dataset once per machine before the Runner starts
    (no process group exists yet at that point, so no barrier is possible).
    """
    import time
    if int(os.environ.get('LOCAL_RANK', 0)) == 0:
        make()
        return
    waited = 0.0
    while not os.path.isfile(done_file):
        if waited > timeout:
            raise TimeoutError(f'no {what} after {timeout:.0f} s (waiting '
                               f'for {done_file})')
        time.sleep(poll_seconds)
        waited += poll_seconds
