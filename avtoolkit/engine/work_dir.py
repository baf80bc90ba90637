"""The work dir of a training run: never overwrite an earlier run's
checkpoints by accident, and find what to resume from.

:func:`prepare_work_dir` is called by ``tools/train.py`` before the Runner
is built (the Runner writes into the work dir as soon as it exists):

* a work dir that holds checkpoints or ``last_checkpoint`` is only used
  with ``--resume`` (continue that run) or ``--overwrite`` (start afresh:
  the earlier checkpoints and ``last_checkpoint`` are deleted first, so the
  new run can never be mixed up with the old one); otherwise
  :class:`WorkDirInUseError` names the folder, what it holds and both
  options;
* ``--resume PATH`` needs ``PATH`` to be a file;
* ``--resume`` (``auto``) resumes from the checkpoint ``last_checkpoint``
  names; when that file is missing, empty or names a checkpoint that is
  gone or unreadable, from the newest readable checkpoint of the folder
  (and says so); with nothing readable at all it starts from scratch and
  says so.
"""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

from .checkpoint_hook import LAST_CHECKPOINT, checkpoint_name_pattern

__all__ = [
    'WorkDirInUseError', 'checkpoint_folder', 'earlier_results',
    'find_resume_checkpoint', 'is_readable_checkpoint', 'prepare_work_dir'
]

# torch.save's legacy (non-zip) format starts with a pickled magic number.
_LEGACY_MAGIC = b'\x80\x02\x8a\n'


class WorkDirInUseError(FileExistsError):
    """The work dir holds the checkpoints of an earlier run."""


def checkpoint_folder(cfg) -> Tuple[str, str]:
    """The folder the checkpoint hook of ``cfg`` writes to and its file name
    template (as mmengine's ``CheckpointHook`` derives them)."""
    work_dir = cfg.work_dir
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    by_epoch = hook.get('by_epoch', True)
    template = hook.get('filename_tmpl') or (
        'epoch_{}.pth' if by_epoch else 'iter_{}.pth')
    out_dir = hook.get('out_dir')
    if out_dir and '://' not in str(out_dir):
        folder = osp.join(str(out_dir),
                          osp.basename(str(work_dir).rstrip(os.sep)))
    else:
        folder = str(work_dir)
    return folder, template


def _numbered(folder: str, template: str) -> List[Tuple[int, str]]:
    """``(number, path)`` of the checkpoints named by ``template`` in
    ``folder``, newest (highest number) first."""
    if not osp.isdir(folder):
        return []
    pattern = re.compile(checkpoint_name_pattern(template) + '$')
    found = []
    for name in os.listdir(folder):
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), osp.join(folder, name)))
    return sorted(found, reverse=True)


def earlier_results(cfg) -> List[str]:
    """Paths of what a training run left in ``cfg``'s work dir and
    checkpoint folder: ``last_checkpoint``, numbered and best checkpoints."""
    folder, template = checkpoint_folder(cfg)
    found = []
    last = osp.join(cfg.work_dir, LAST_CHECKPOINT)
    if osp.lexists(last):
        found.append(last)
    numbered = sorted(_numbered(folder, template))
    found += [path for _, path in numbered]
    if osp.isdir(folder):
        best = re.compile(r'best_.+' + checkpoint_name_pattern(template) +
                          '$')
        found += sorted(osp.join(folder, n) for n in os.listdir(folder)
                        if best.match(n))
    return found


def is_readable_checkpoint(path: str) -> bool:
    """A cheap test that ``path`` is a complete ``torch.save`` file: a zip
    archive with its central directory (present only when the file was
    written to the end), or torch's legacy format."""
    try:
        if not osp.isfile(path) or osp.getsize(path) == 0:
            return False
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return bool(archive.namelist())
        with open(path, 'rb') as f:
            return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
    except (OSError, zipfile.BadZipFile):
        return False


def _from_last_checkpoint(work_dir: str,
                          folder: str) -> Tuple[Optional[str], str]:
    """The checkpoint ``last_checkpoint`` names, or None and why not."""
    record = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(record):
        return None, f'there is no {LAST_CHECKPOINT}'
    try:
        with open(record, encoding='utf-8') as f:
            named = f.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        return None, f'{record} cannot be read ({err})'
    if not named:
        return None, f'{record} is empty'
    candidates = [named]
    # A work dir moved or copied elsewhere: the same name in its folder.
    moved = osp.join(folder, osp.basename(named))
    if moved != named:
        candidates.append(moved)
    for path in candidates:
        if osp.isfile(path):
            if is_readable_checkpoint(path):
                return path, ''
            return None, (f'{LAST_CHECKPOINT} names {path}, which is not a '
                          'readable checkpoint')
    return None, f'{LAST_CHECKPOINT} names {named}, which does not exist'


def find_resume_checkpoint(cfg) -> Tuple[Optional[str], str]:
    """What ``--resume`` without a path resumes from.

    Returns:
        ``(path, note)``: the checkpoint (None: nothing to resume) and a
        sentence for the log when it is not simply the one
        ``last_checkpoint`` names.
    """
    folder, template = checkpoint_folder(cfg)
    path, why = _from_last_checkpoint(cfg.work_dir, folder)
    if path is not None:
        return path, ''
    unreadable = []
    for _, candidate in _numbered(folder, template):
        if is_readable_checkpoint(candidate):
            skipped = (f' (skipped unreadable {", ".join(unreadable)})'
                       if unreadable else '')
            return candidate, (
                f'--resume: {why}; resuming from the newest readable '
                f'checkpoint in {folder}: {candidate}{skipped}')
        unreadable.append(osp.basename(candidate))
    found = (f'only unreadable checkpoints ({", ".join(unreadable)})'
             if unreadable else 'no checkpoint')
    return None, (f'--resume: nothing to resume in {cfg.work_dir} ({why}, '
                  f'{found}); starting from scratch')


def _rank() -> int:
    from mmengine.dist import get_rank, is_distributed
    if is_distributed():
        return get_rank()
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', 0)))


def _delete_results(paths: List[str]) -> None:
    for path in paths:
        try:
            os.remove(path)
        except IsADirectoryError:
            import shutil
            shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass


def prepare_work_dir(cfg, resume: Optional[str], overwrite: bool = False,
                     initial_load_from: Optional[str] = None
                     ) -> List[Tuple[str, str]]:
    """Check the work dir of ``cfg`` and settle what a run resumes from
    (``cfg.resume`` / ``cfg.load_from``, in place).

    Args:
        cfg: the merged training config.
        resume: ``--resume``: None, ``'auto'`` or a checkpoint path (None
            with ``cfg.resume`` set counts as ``cfg.load_from`` or
            ``'auto'``).
        overwrite: ``--overwrite``.
        initial_load_from: the config's own ``load_from``, used when
            ``--resume`` finds nothing and the run starts from scratch.

    Returns:
        ``(level, message)`` lines for the run's log.

    Raises:
        WorkDirInUseError: the work dir holds an earlier run's results and
            neither option was given.
        FileNotFoundError: ``--resume PATH`` names no file.
    """
    notes: List[Tuple[str, str]] = []
    if resume is None and cfg.get('resume'):
        # ``resume = True`` in the config file itself: mmengine's meaning
        # (the latest checkpoint, or ``load_from`` when set).
        resume = cfg.get('load_from') or 'auto'
    if resume is not None and overwrite:
        raise ValueError('--resume continues the run in the work dir and '
                         '--overwrite deletes it; give only one of them')
    if resume is not None and resume != 'auto':
        path = osp.expanduser(resume)
        if osp.isdir(path):
            raise IsADirectoryError(
                f'--resume {resume}: this is a folder, not a checkpoint file '
                '(give the checkpoint file, or --resume without a path to '
                'continue the run of --work-dir)')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'--resume {resume}: no such checkpoint file (--resume '
                'without a path continues from the latest checkpoint of the '
                'work dir)')
        cfg.resume, cfg.load_from = True, path
        notes.append(('INFO', f'resuming from {path} (--resume)'))
        return notes
    if resume == 'auto':
        path, note = find_resume_checkpoint(cfg)
        if path is None:
            cfg.resume, cfg.load_from = False, initial_load_from
            notes.append(('WARNING', note))
        else:
            cfg.resume, cfg.load_from = True, path
            notes.append(('WARNING', note) if note else
                         ('INFO', f'resuming from {path} ({LAST_CHECKPOINT})'))
        return notes
    found = earlier_results(cfg)
    if not found:
        return notes
    shown = ', '.join(osp.basename(p) for p in found[:8]) + (
        f' and {len(found) - 8} more' if len(found) > 8 else '')
    if not overwrite:
        raise WorkDirInUseError(
            f'The work dir {cfg.work_dir} holds the results of an earlier run '
            f'({shown}); a new run would overwrite them. Pass --resume to '
            'continue that run, --overwrite to delete them and start '
            'afresh, or choose another --work-dir.')
    if _rank() == 0:
        _delete_results(found)
    notes.append(('WARNING', f'--overwrite: deleted the earlier run\'s '
                  f'{shown} in {cfg.work_dir}'))
    return notes
