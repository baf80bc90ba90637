"""Model weights out of checkpoint files and into modules.

:func:`extract_state_dict` finds the weights in a loaded checkpoint,
:func:`read_state_dict` reads them from a file (through
:func:`~avtoolkit.checkpoint.io.read_checkpoint`), and :func:`load_weights`
loads the tensors under mapped key prefixes into a module, returning and
logging a :class:`LoadReport` of what was loaded, ignored, missing or
unexpected.  Every path that fills a model from a file uses them: the
classifiers' ``pretrained``, probes and feature extraction, the ESC-50
protocol and the converters.
"""
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from mmengine.logging import print_log
from torch import Tensor, nn

from avtoolkit.checkpoint.io import CheckpointError, read_checkpoint

STATE_DICT_ENTRIES = ('state_dict', 'model_state', 'model_state_dict')
_WRAPPER_PREFIX = 'module.'


def extract_state_dict(checkpoint: Any,
                       filename: str = 'the checkpoint',
                       entries: Sequence[str] = STATE_DICT_ENTRIES
                       ) -> Tuple[Dict[str, Tensor], str]:
    """The model weights of a loaded checkpoint.

    Looks for the first of ``entries`` holding a dict (mmengine's
    ``state_dict``, PySlowFast's ``model_state``, ``model_state_dict``),
    else takes ``checkpoint`` itself as a bare state dict of tensors.
    Non-tensor values are dropped; a ``module.`` prefix on every key (a
    wrapped model) is removed.

    Returns:
        ``(state_dict, entry)``: ``entry`` is the key it was found under, or
        ``''`` for a bare state dict.

    Raises:
        CheckpointError: no weights found (the message names ``filename``).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{filename} holds a '
                              f'{type(checkpoint).__name__}, not a dict of '
                              'model weights')
    for entry in entries:
        if isinstance(checkpoint.get(entry), Mapping):
            state, found = checkpoint[entry], entry
            break
    else:
        if checkpoint and all(isinstance(v, Tensor)
                              for v in checkpoint.values()):
            state, found = checkpoint, ''
        else:
            raise CheckpointError(
                f'no model weights in {filename}: it has none of the '
                f'entries {list(entries)} and is not a bare state dict of '
                f'tensors (its keys: {sorted(map(str, checkpoint))[:10]})')
    state = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if state and all(k.startswith(_WRAPPER_PREFIX) for k in state):
        state = {k[len(_WRAPPER_PREFIX):]: v for k, v in state.items()}
    if not state:
        where = f'the "{found}" entry of {filename}' if found else filename
        raise CheckpointError(f'{where} holds no tensors')
    return state, found


def read_state_dict(filename: str) -> 'OrderedDict[str, Tensor]':
    """The model weights of a checkpoint file (see
    :func:`extract_state_dict`), read with
    :func:`~avtoolkit.checkpoint.io.read_checkpoint`."""
    checkpoint = read_checkpoint(filename)
    state, _ = extract_state_dict(checkpoint, f'checkpoint "{filename}"')
    return OrderedDict(state)


@dataclass
class LoadReport:
    """What :func:`load_weights` did with each key.

    ``loaded``, ``missing``, ``unexpected`` and ``shape_mismatch`` name
    module keys, ``ignored`` the checkpoint keys under no mapped prefix.
    """
    filename: str
    prefix_map: Dict[str, str] = field(default_factory=dict)
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)

    def summary(self) -> str:
        def show(keys: List[str], limit: int = 8) -> str:
            shown = ', '.join(keys[:limit])
            more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
            return shown + more

        lines = [f'pretrained weights from {self.filename}: '
                 f'{len(self.loaded)} tensors loaded']
        for name, keys in (('missing (left at their initial values)',
                            self.missing),
                           ('shape mismatch (not loaded)',
                            self.shape_mismatch),
                           ('unexpected under a mapped prefix (not loaded)',
                            self.unexpected),
                           ('ignored (pretraining heads, unused modules)',
                            self.ignored)):
            if keys:
                lines.append(f'  {name}: {len(keys)}: {show(keys)}')
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        """The report as plain JSON data (results files, feature caches):
        ``checkpoint``, ``prefix`` (the checkpoint prefix, or the whole map
        when there are several), ``loaded`` and ``ignored`` (counts),
        ``missing`` and ``unexpected`` (module keys)."""
        prefix: Union[str, Dict[str, str]] = dict(self.prefix_map)
        if len(self.prefix_map) == 1:
            prefix = next(iter(self.prefix_map))
        return dict(checkpoint=self.filename, prefix=prefix,
                    loaded=len(self.loaded), missing=list(self.missing),
                    unexpected=list(self.unexpected),
                    ignored=len(self.ignored))


class WeightsMismatchError(CheckpointError):
    """The weights of a checkpoint do not fit the model; ``report`` is the
    :class:`LoadReport` (nothing was loaded)."""

    def __init__(self, message: str, report: LoadReport):
        super().__init__(message)
        self.report = report


def load_weights(module: nn.Module,
                 filename: str,
                 prefix_map: Union[str, Mapping[str, str]],
                 strict: bool = True,
                 logger: str = 'current') -> LoadReport:
    """Load the tensors of a checkpoint whose names start with a mapped
    prefix into ``module``.

    Args:
        module: the model to fill.
        filename: checkpoint path (see :func:`read_state_dict`).
        prefix_map: checkpoint prefix -> module prefix, e.g.
            ``{'visual_backbone.cnn.': 'cnn.'}`` (the first matching
            prefix applies); a string ``p`` means ``{p: ''}`` (the module's
            weights are under ``p``; ``''``: the whole checkpoint).
            Checkpoint keys under no mapped prefix are ignored (reported);
            module keys under a mapped module prefix are expected.
        strict: refuse module keys under a mapped prefix that the
            checkpoint lacks (missing) and checkpoint keys under a mapped
            prefix that the module lacks (unexpected); without ``strict``
            they are reported and logged.
        logger: mmengine logger name for the report.

    Returns:
        :class:`LoadReport`.

    Raises:
        FileNotFoundError, NotACheckpointError, UnsafeCheckpointError,
            CheckpointError: the file cannot be read or holds no weights
            (see :func:`~avtoolkit.checkpoint.io.read_checkpoint`).
        WeightsMismatchError: no checkpoint key under a mapped prefix, a
            shape differs (always: a different architecture), missing or
            unexpected keys with ``strict``, or nothing to load.  The
            module is left untouched.
    """
    if isinstance(prefix_map, str):
        prefix_map = {prefix_map: ''}
    if not prefix_map:
        raise ValueError('prefix_map must name at least one prefix')
    state = read_state_dict(filename)
    own = module.state_dict()
    report = LoadReport(filename=filename, prefix_map=dict(prefix_map))
    to_load = OrderedDict()
    mismatched = set()
    for key, value in state.items():
        target = None
        for src, dst in prefix_map.items():
            if key.startswith(src):
                target = dst + key[len(src):]
                break
        if target is None:
            report.ignored.append(key)
        elif target not in own:
            report.unexpected.append(target)
        elif tuple(own[target].shape) != tuple(value.shape):
            mismatched.add(target)
            report.shape_mismatch.append(
                f'{target} (checkpoint {tuple(value.shape)}, model '
                f'{tuple(own[target].shape)})')
        else:
            to_load[target] = value
            report.loaded.append(target)
    wanted = tuple(prefix_map.values())
    report.missing = [k for k in own if k.startswith(wanted)
                      and k not in to_load and k not in mismatched]
    prefixes = ', '.join(f'"{p}"' for p in prefix_map)
    if len(report.ignored) == len(state):
        heads = sorted({k.split('.')[0] + '.' for k in state})
        raise WeightsMismatchError(
            f'checkpoint "{filename}" has no weights under {prefixes}; its '
            f'top-level prefixes are {heads[:12]}', report)
    if report.shape_mismatch:
        raise WeightsMismatchError(
            f'checkpoint "{filename}": shapes under {prefixes} differ from '
            'the model built from the config (a different architecture?): '
            f'{report.shape_mismatch[:5]}\n' + report.summary(), report)
    if strict and (report.missing or report.unexpected):
        raise WeightsMismatchError(
            f'checkpoint "{filename}" does not fit the model (strict '
            'loading; strict_pretrained=False / strict_load=False in a '
            'config loads it anyway):\n' + report.summary(), report)
    if not to_load:
        raise WeightsMismatchError(
            f'nothing was loaded from checkpoint "{filename}":\n'
            + report.summary(), report)
    module.load_state_dict(to_load, strict=False)
    level = logging.WARNING if (report.missing or report.unexpected) \
        else logging.INFO
    print_log(report.summary(), logger=logger, level=level)
    return report
