"""Distributed set-up that also works on machines without a GPU.

mmengine 0.10.7 pins every process to a CUDA device while initialising the
process group (``torch.cuda.set_device``), which fails on a CPU-only machine,
and its DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for
CPU modules.  :func:`prepare_distributed` initialises a ``gloo`` process group
itself on such machines (mmengine then sees an initialised group and skips its
own) and configures the wrapper with ``device_ids=None``.  With CUDA present
nothing is changed: mmengine's NCCL path is used as is.
"""
import os
import subprocess
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


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
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    # ConfigDict.setdefault stores a converted copy of a new default, so the
    # missing levels are assigned first and looked up afterwards.
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    dist_cfg['backend'] = 'gloo'
    if launcher == 'slurm':
        _slurm_env(dist_cfg.get('port'))
    elif launcher != 'pytorch':
        raise ValueError(f'Unsupported launcher "{launcher}" on a machine '
                         'without CUDA; use "pytorch" (torchrun) or "slurm".')
    if not torch_dist.is_initialized():
        timeout = dist_cfg.get('timeout', 1800)
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # CPU modules take no device ids; FSDP-style wrappers ignore the key.
    if 'DistributedDataParallel' in str(wrapper.get('type', '')):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


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
