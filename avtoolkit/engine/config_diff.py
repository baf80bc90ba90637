"""Compare the config a checkpoint was trained with and the current one.

mmengine stores the training config in every checkpoint as text
(``meta['cfg']``, the config's ``pretty_text``: Python source).  That text
comes from a file someone else may have written, so it is never executed
here: :func:`parse_config_text` reads it as data
(:mod:`avtoolkit.checkpoint.config_text`).  Any expression that is not
plain data is kept as an :class:`Opaque` value holding its source text,
which still compares equal to the same text, so an unusual config compares
correctly without ever being run.

:func:`check_resume_config` is what a resume calls: differences that change
the shapes of the model's tensors or the meaning of the saved data position
(``model.*``, ``train_dataloader.batch_size``) are refused with
:class:`ResumeConfigError`, which lists each key with its old and new value
and the ways out; other differences are logged as a warning.
"""
import fnmatch
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from avtoolkit.checkpoint.config_text import ConfigTextError, Opaque
from avtoolkit.checkpoint.config_text import \
    parse_config_text as read_config_text

__all__ = [
    'Opaque', 'ResumeConfigError', 'check_resume_config', 'config_diff',
    'flatten_config', 'parse_config_text'
]

# Differences a resume cannot absorb: the weights and optimizer state were
# made for this model, and the saved iteration count / data position counts
# batches of this size.
REFUSED = ('model', 'model.*', 'train_dataloader.batch_size')
# Expected to differ between a run and its resumption; not even reported.
IGNORED = ('work_dir', 'resume', 'load_from', 'experiment_name', 'launcher')


class ResumeConfigError(ValueError):
    """The config of a resumed run differs from the checkpoint's in a way
    the checkpoint's state cannot follow."""


def parse_config_text(text: str) -> Dict[str, Any]:
    """The top-level assignments of a config's Python text; expressions that
    are not plain data are kept as :class:`Opaque` source text (see
    :mod:`avtoolkit.checkpoint.config_text`; nothing is executed).

    Raises:
        ConfigTextError: the text is not Python.
    """
    return read_config_text(text, 'the stored config', keep_unknown=True)


def flatten_config(value: Any, prefix: str = '') -> Dict[str, Any]:
    """``{'a.b': 1, 'c[0].type': 'X', ...}``: dicts are walked by key, lists
    and tuples of dicts by index; other values are leaves."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: {}}
        flat: Dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten_config(
                item, f'{prefix}.{key}' if prefix else str(key)))
        return flat
    if isinstance(value, (list, tuple)) and value and any(
            isinstance(item, dict) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten_config(item, f'{prefix}[{index}]'))
        return flat
    return {prefix: value}


_MISSING = Opaque('<not set>')


def config_diff(old: Dict[str, Any],
                new: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for every key path whose value
    differs (a key set on one side only shows ``<not set>`` on the
    other)."""
    flat_old, flat_new = flatten_config(old), flatten_config(new)
    keys = list(flat_old) + [k for k in flat_new if k not in flat_old]
    return [(k, flat_old.get(k, _MISSING), flat_new.get(k, _MISSING))
            for k in keys
            if flat_old.get(k, _MISSING) != flat_new.get(k, _MISSING)]


def _matches(key: str, patterns: Iterable[str]) -> bool:
    # ``model.*`` also covers ``model.layers[0].x``; a plain key covers its
    # own sub-keys (``model.neck`` covers ``model.neck.num_layers``).
    for pattern in patterns:
        if fnmatch.fnmatchcase(key, pattern) or key.startswith(
                pattern + '.') or key.startswith(pattern + '['):
            return True
    return False


def _show(items: Sequence[Tuple[str, Any, Any]], limit: int = 20) -> str:
    lines = [f'  {key}: {old!r} (checkpoint) -> {new!r} (now)'
             for key, old, new in items[:limit]]
    if len(items) > limit:
        lines.append(f'  ... and {len(items) - limit} more')
    return '\n'.join(lines)


def check_resume_config(checkpoint_text: Optional[str], current_text: str,
                        checkpoint_name: str,
                        allow_changes: Sequence[str] = (),
                        logger=None) -> List[Tuple[str, Any, Any]]:
    """Refuse to resume ``checkpoint_name`` with a config whose model or
    train batch size differ from the checkpoint's; warn about any other
    difference.

    Args:
        checkpoint_text: ``meta['cfg']`` of the checkpoint (None: nothing
            to compare, the check is skipped with an info line).
        current_text: the current config's ``pretty_text``.
        checkpoint_name: the file, for the messages.
        allow_changes: key paths or ``fnmatch`` patterns (``model.dropout``,
            ``model.*``) whose differences are only warned about.
        logger: where the warning goes (an mmengine logger).

    Returns:
        The differences found (refused ones raise instead).

    Raises:
        ResumeConfigError: a refused difference, listed with both values.
    """
    if not checkpoint_text:
        if logger is not None:
            logger.info(f'{checkpoint_name} holds no config; the resumed '
                        'config is not compared with it')
        return []
    try:
        old = parse_config_text(checkpoint_text)
        new = parse_config_text(current_text)
    except ConfigTextError as err:
        if logger is not None:
            logger.warning(f'cannot compare the config of {checkpoint_name} '
                           f'with the current one ({err})')
        return []
    diffs = [d for d in config_diff(old, new) if not _matches(d[0], IGNORED)]
    refused = [d for d in diffs if _matches(d[0], REFUSED)
               and not _matches(d[0], allow_changes)]
    if refused:
        raise ResumeConfigError(
            f'Cannot resume from {checkpoint_name}: the config differs from '
            "the checkpoint's in settings that its weights, optimizer state "
            'or data position depend on:\n' + _show(refused) + '\n'
            'Resume with the values of the checkpoint, or start a new run in '
            f'a new work dir (--work-dir), with load_from={checkpoint_name} '
            '(--cfg-options) to start from its weights. To resume anyway, '
            'list the keys in default_hooks.checkpoint.resume_allow_changes.')
    if diffs and logger is not None:
        logger.warning(
            f'the config differs from the one {checkpoint_name} was trained '
            'with (resuming anyway):\n' + _show(diffs))
    return diffs
