"""A checkpoint hook that never leaves a run without a resumable checkpoint.

mmengine's ``CheckpointHook`` prunes the oldest checkpoint *before* writing
the new one and writes ``last_checkpoint`` with a plain ``open``.  With
``max_keep_ckpts=1`` a crash or a full disk during a save therefore leaves
``last_checkpoint`` naming a deleted file, or an empty ``last_checkpoint``.
:class:`SafeCheckpointHook` keeps mmengine's options and file names and
changes the order of a save:

1. refuse to save weights holding NaN or infinity
   (:class:`~avtoolkit.engine.hooks.NonFiniteParameterError`);
2. write the checkpoint (atomically: avtoolkit routes mmengine's local
   writes through :mod:`avtoolkit.utils.atomic`, see
   :func:`avtoolkit.checkpoint.io.use_atomic_local_writes`) and flush its
   folder;
3. point ``last_checkpoint`` at it, atomically;
4. only then delete what ``max_keep_ckpts`` prunes (and, for
   ``save_best``, the previous best checkpoint).

A failed save (``OSError``, e.g. a full disk) raises
:class:`CheckpointSaveError` naming the checkpoint that is still the last
good one; nothing was deleted.  At the start of training the temporary
files that killed saves left in the checkpoint folder and the work dir are
removed (and counted in the log).  On resume the checkpoint's config is
compared with the current one (:mod:`avtoolkit.engine.config_diff`).

The hook is registered as ``SafeCheckpointHook`` and, in avtoolkit's
scope, also as ``CheckpointHook``: every config with
``default_scope = 'avtoolkit'`` gets it, including configs that write
``type='CheckpointHook'`` and configs that leave the checkpoint hook to
mmengine's defaults.  ``type='mmengine.CheckpointHook'`` selects mmengine's
own hook.
"""
import os
import os.path as osp
import re
from typing import List, Sequence

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from avtoolkit.registry import HOOKS
from avtoolkit.utils.atomic import remove_temp_files, write_text_atomic

from .config_diff import check_resume_config
from .hooks import (NonFiniteParameterError, last_good_checkpoint_advice,
                    nonfinite_tensors)

LAST_CHECKPOINT = 'last_checkpoint'


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed; the previous one is kept."""


def checkpoint_name_pattern(filename_tmpl: str) -> str:
    """A regular expression (text) for the names ``filename_tmpl`` makes,
    with the number as group 1 (``iter_{}.pth`` -> ``iter_(\\d+)\\.pth``)."""
    head, _, tail = filename_tmpl.partition('{}')
    return re.escape(head) + r'(\d+)' + re.escape(tail)


def fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a rename into it) to disk where the
    platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` only note the path, so
    mmengine's best-checkpoint code can run unchanged while the deletion
    waits until the new file is written."""

    def __init__(self, backend):
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, path) -> None:
        self.pending.append(str(path))

    def rmtree(self, path) -> None:
        self.pending.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module(name=['SafeCheckpointHook', 'CheckpointHook'])
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that saves before it prunes (see the
    module's description).

    Args:
        check_finite: refuse to save a checkpoint whose weights or buffers
            hold NaN or infinity (the run stops with an error naming the
            last good checkpoint and the first offending tensors).
        check_resume_config: on resume, compare the checkpoint's config
            with the current one and refuse differences of the model or
            the training batch size.
        resume_allow_changes: key paths or patterns (``model.dropout``,
            ``model.*``) whose differences only warn on resume.
        **kwargs: the arguments of mmengine's ``CheckpointHook``.
    """

    def __init__(self, *args, check_finite: bool = True,
                 check_resume_config: bool = True,
                 resume_allow_changes: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.check_finite = bool(check_finite)
        self.check_resume_config = bool(check_resume_config)
        if isinstance(resume_allow_changes, str):
            resume_allow_changes = [resume_allow_changes]
        self.resume_allow_changes = tuple(resume_allow_changes)

    # ------------------------------------------------------------- start
    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process():
            self._remove_stale_temp_files(runner)

    def _is_local(self) -> bool:
        backend = getattr(self.file_backend, '_backend', self.file_backend)
        return isinstance(backend, LocalBackend)

    def _remove_stale_temp_files(self, runner) -> None:
        removed = []
        if self._is_local():
            names = checkpoint_name_pattern(self.filename_tmpl)
            removed += remove_temp_files(
                str(self.out_dir), rf'{names}|best_.+{names}')
        removed += remove_temp_files(runner.work_dir, LAST_CHECKPOINT)
        if removed:
            runner.logger.warning(
                f'removed {len(removed)} temporary file(s) left by '
                f'interrupted checkpoint saves: {", ".join(removed)}')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.check_resume_config or not getattr(runner, '_resume',
                                                       False):
            return
        meta = checkpoint.get('meta') or {}
        try:
            current = runner.cfg.pretty_text
        except Exception as err:  # a config yapf cannot format
            runner.logger.warning(f'cannot compare configs on resume: {err}')
            return
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        check_resume_config(meta.get('cfg'), current, str(source),
                            allow_changes=self.resume_allow_changes,
                            logger=runner.logger)

    # -------------------------------------------------------------- save
    def _refuse_nonfinite(self, runner, filename: str) -> None:
        if not self.check_finite:
            return
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        state = model.state_dict()
        bad = nonfinite_tensors(state.items())
        if not bad:
            return
        floating = sum(1 for v in state.values()
                       if hasattr(v, 'is_floating_point')
                       and v.is_floating_point())
        shown = ', '.join(bad[:5]) + (
            f' and {len(bad) - 5} more' if len(bad) > 5 else '')
        raise NonFiniteParameterError(
            f'Refusing to save {filename} at iteration {runner.iter + 1}: '
            f'{len(bad)} of {floating} floating point tensors of the model '
            f'hold NaN or infinity (first: {shown}). '
            + last_good_checkpoint_advice(runner))

    def _delete(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # e.g. DeepSpeed checkpoints
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        filename = self.filename_tmpl.format(step)
        self._refuse_nonfinite(runner, filename)
        hub = runner.message_hub
        before = (self.last_ckpt, hub.get_info('last_ckpt', None),
                  list(getattr(self, 'keep_ckpt_ids', [])))
        pruned = []
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            # The list saved in this checkpoint is the list after pruning;
            # the files go only once the checkpoint is on disk.
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                pruned.append(self.keep_ckpt_ids[0])
            self.keep_ckpt_ids.append(step)  # a bounded deque drops [0]
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        path = self.file_backend.join_path(self.out_dir, filename)
        self.last_ckpt = path
        hub.update_info('last_ckpt', path)
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta,
                by_epoch=self.by_epoch, backend_args=self.backend_args,
                **self.args)
        except BaseException as err:
            self.last_ckpt = before[0]
            hub.update_info('last_ckpt', before[1])
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids.clear()
                self.keep_ckpt_ids.extend(before[2])
                hub.update_info('keep_ckpt_ids', before[2])
            if isinstance(err, OSError):
                kept = (f'the last good checkpoint {before[1]} is kept and '
                        f'{LAST_CHECKPOINT} still names it; free the space '
                        'or fix the error, then continue with --resume'
                        if before[1] else 'no earlier checkpoint exists')
                raise CheckpointSaveError(
                    err.errno, f'Saving checkpoint {path} failed '
                    f'({err.strerror or err}); nothing was deleted: '
                    f'{kept}.') from err
            raise
        if not is_main_process():
            return
        if self._is_local():
            fsync_folder(str(self.out_dir))
        write_text_atomic(osp.join(runner.work_dir, LAST_CHECKPOINT), path)
        for old in pruned:
            old_path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old))
            if old_path != path:
                self._delete(old_path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best:
            return
        self._refuse_nonfinite(runner, 'the best checkpoint')
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        # mmengine records the new best before writing it; a failed write
        # must leave the previous best recorded.
        info = runner.message_hub.runtime_info
        recorded = {k: v for k, v in info.items()
                    if k.startswith(('best_score', 'best_ckpt'))}
        paths = (getattr(self, 'best_ckpt_path', None),
                 dict(getattr(self, 'best_ckpt_path_dict', {})))
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        except BaseException:
            for key in [k for k in info
                        if k.startswith(('best_score', 'best_ckpt'))]:
                if key not in recorded:
                    del info[key]
            info.update(recorded)
            if hasattr(self, 'best_ckpt_path'):
                self.best_ckpt_path = paths[0]
            if hasattr(self, 'best_ckpt_path_dict'):
                self.best_ckpt_path_dict = paths[1]
            raise
        finally:
            self.file_backend = backend
        if not is_main_process() or not deferred.pending:
            return
        live = {str(self.last_ckpt)}
        live.add(str(getattr(self, 'best_ckpt_path', None)))
        live.update(map(str, getattr(self, 'best_ckpt_path_dict',
                                     {}).values()))
        for step in getattr(self, 'keep_ckpt_ids', []):
            live.add(str(backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))))
        for path in deferred.pending:
            if path not in live:
                self._delete(path)
