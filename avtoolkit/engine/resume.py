"""Resuming iteration-based training: random states and the data position.

mmengine 0.10.7 resumes the weights, optimizer, schedulers, AMP scaler and
iteration count, but not the random generators, and it puts the data stream
back in place by decoding every batch already trained on again.  For a 220K
iteration pretraining run that replay takes longer than the training it
skips.  Two pieces fix this:

:class:`RandomStateHook`
    stores the Python, numpy, torch CPU and CUDA generator states of every
    rank in each checkpoint (``checkpoint['random_states']``, one entry per
    rank) and puts them back right before the first training iteration
    after a resume, so masking, negative sampling, derangements and dropout
    continue the interrupted run's random streams.

:class:`ResumableIterBasedTrainLoop`
    ``resume_data='skip'`` (default) moves the data source to the position
    of the interrupted run without decoding anything: an
    ``InfiniteSampler`` skips sample indices, an ``AVWebDataset`` skips raw
    tar records (:meth:`AVWebDataset.set_position`).  ``'replay'`` keeps
    mmengine's behaviour (decode and drop every batch already seen).

What is exact
-------------
With ``replay``, ``num_workers >= 1``, the same world size and the random
states restored, a resumed run reproduces the uninterrupted one bit for bit
on CPU (tested).  With ``skip`` the order of samples is the same but the
random augmentation draws (crops, flips, temporal jitter) inside the loader
workers differ, because the restarted workers start their generators afresh
instead of after the skipped samples.  With ``num_workers=0`` the pipeline
draws from the main process's generators, which the replayed batches then
advance, so even ``replay`` is not exact there.  Samplers other than
``InfiniteSampler`` and iterable datasets without ``set_position`` fall back
to ``replay`` with a warning.
"""
import itertools
import logging
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather_object, get_dist_info, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from avtoolkit.registry import HOOKS, LOOPS

RANDOM_STATES_KEY = 'random_states'


def get_random_state() -> Dict:
    """The generator states of this process, as plain lists and tensors
    (which the ``weights_only`` checkpoint reader accepts)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Dict) -> None:
    """Restore what :func:`get_random_state` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state(
        (np_state['name'], np_state['keys'].numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'], np_state['gauss']))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            print_log(
                f'the checkpoint holds {len(cuda)} CUDA generator states but '
                f'{torch.cuda.device_count()} devices are visible; CUDA '
                'generators keep their fresh seeds', logger='current',
                level=logging.WARNING)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every rank's generator states in checkpoints; restore them on
    resume, right before the first iteration of the resumed run.

    A checkpoint written by ``N`` ranks restores only into ``N`` ranks; with
    another world size the generators keep the seeds set by ``randomness``
    and a warning says so.  Checkpoints without states (written without
    this hook) resume as before.

    Args:
        enabled: False turns the hook off (mmengine cannot drop a default
            hook it does not know with ``None``).
    """
    priority = 'LOW'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._pending: Optional[Dict] = None
        self._gathered: Optional[tuple] = None

    @staticmethod
    def _checkpoint_due(runner) -> bool:
        """Whether a ``CheckpointHook`` saves after this iteration (the same
        test it applies itself)."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval,
                                             hook.save_begin)
                    or hook.save_last and hook.is_last_train_iter(runner)):
                return True
        return False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        # mmengine saves on rank 0 only, so the other ranks' states must
        # reach it beforehand, in a call every rank makes.  This hook runs
        # before CheckpointHook (priority LOW vs VERY_LOW).
        if self.enabled and get_world_size() > 1 and \
                self._checkpoint_due(runner):
            self._gathered = (runner.iter,
                              all_gather_object(get_random_state()))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.enabled:
            return
        if get_world_size() == 1:
            checkpoint[RANDOM_STATES_KEY] = [get_random_state()]
        elif self._gathered is not None and \
                self._gathered[0] == runner.iter:
            checkpoint[RANDOM_STATES_KEY] = self._gathered[1]
        # else: a save outside the iteration schedule (e.g. a best
        # checkpoint); the other ranks' states are not at hand, so none
        # are stored and a resume from it keeps fresh seeds.

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.enabled or not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) starts fresh streams
        states: Optional[List[Dict]] = checkpoint.get(RANDOM_STATES_KEY)
        if not states:
            runner.logger.warning(
                'the checkpoint holds no random states (written without '
                'RandomStateHook); masking, sampling and dropout draws will '
                'differ from the interrupted run')
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            runner.logger.warning(
                f'the checkpoint holds random states of {len(states)} ranks '
                f'but {world_size} are running; generators keep their fresh '
                'seeds')
            return
        self._pending = states[rank]

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._pending is not None:
            set_random_state(self._pending)
            self._pending = None
            runner.logger.info('random generator states restored from the '
                               'checkpoint')


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes the data stream without decoding
    the batches already trained on.

    Args:
        runner, dataloader, max_iters, val_begin, val_interval,
            dynamic_intervals: as ``IterBasedTrainLoop``.
        resume_data: ``'skip'`` to move the sampler or the shard stream to
            the interrupted position without loading anything, ``'replay'``
            to load and drop every batch already seen (mmengine's way:
            exact augmentation draws, slow).
    """

    RESUME_MODES = ('skip', 'replay')

    def __init__(self, runner, dataloader, max_iters: int,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals=None, resume_data: str = 'skip') -> None:
        if resume_data not in self.RESUME_MODES:
            raise ValueError(f'resume_data must be one of '
                             f'{self.RESUME_MODES}, got {resume_data!r}')
        super().__init__(runner, dataloader, max_iters, val_begin=val_begin,
                         val_interval=val_interval,
                         dynamic_intervals=dynamic_intervals)
        self.resume_data = resume_data

    # ------------------------------------------------------------- resume
    def _restart_iterator(self) -> None:
        """Drop the current iterator (and its persistent workers, which hold
        copies of the dataset and sampler) and start a new one."""
        loader = self.dataloader
        old = getattr(loader, '_iterator', None)
        if old is not None and hasattr(old, '_shutdown_workers'):
            old._shutdown_workers()
        if hasattr(loader, '_iterator'):
            loader._iterator = None
        self.dataloader_iterator = _InfiniteDataloaderIterator(loader)

    def _skip_to(self, iterations: int) -> bool:
        """Place the data source after ``iterations`` batches; False when
        it cannot be done without loading data."""
        loader = self.dataloader
        dataset = loader.dataset
        batch_size = loader.batch_size
        if batch_size is None:  # a custom batch sampler
            return False
        if hasattr(dataset, 'set_position') and hasattr(dataset,
                                                        'position_after'):
            try:
                epoch, skip, first = dataset.position_after(
                    iterations, batch_size, loader.num_workers,
                    drop_last=loader.drop_last)
            except ValueError as e:
                print_log(f'cannot compute the shard position ({e})',
                          logger='current', level=logging.WARNING)
                return False
            dataset.set_position(epoch, skip, first)
            self._restart_iterator()
            print_log(
                f'data stream placed after {iterations} batches without '
                f'decoding: epoch {epoch}, records skipped per worker {skip}',
                logger='current')
            return True
        sampler = loader.sampler
        if type(sampler) is InfiniteSampler:
            # Its index stream is one generator shared by all iterators;
            # start it again and drop the indices already consumed.
            sampler.indices = sampler._indices_of_rank()
            drop = iterations * batch_size
            next(itertools.islice(sampler.indices, drop, drop), None)
            self._restart_iterator()
            print_log(
                f'sampler placed after {iterations} batches ({drop} '
                'indices) without loading data', logger='current')
            return True
        return False

    def _resume_data_position(self) -> None:
        if self.resume_data == 'skip' and self._skip_to(self._iter):
            return
        if self.resume_data == 'skip':
            print_log(
                f'{type(self.dataloader.sampler).__name__} / '
                f'{type(self.dataloader.dataset).__name__} cannot skip '
                'without loading; replaying the data instead',
                logger='current', level=logging.WARNING)
        print_log(f'replaying {self._iter} batches to restore the data '
                  'position', logger='current', level=logging.WARNING)
        for _ in range(self._iter):
            next(self.dataloader_iterator)

    def run(self) -> torch.nn.Module:
        """Launch training (mmengine's loop, with the resume above)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._resume_data_position()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
