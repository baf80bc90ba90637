"""Reading model weights out of checkpoint files and loading them into
modules, with a report of what was loaded, ignored, missing or of the wrong
shape."""
import logging
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from mmengine.logging import print_log
from torch import Tensor, nn

from avtoolkit.checkpoint.io import (STATE_DICT_ENTRIES, ConversionError,
                                     allow_mmengine_checkpoint_globals,
                                     load_checkpoint_file)


@dataclass
class LoadReport:
    """What :func:`load_encoder_checkpoint` did with each key."""
    filename: str
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


def read_state_dict(filename: str) -> 'OrderedDict[str, Tensor]':
    """The state dict of a checkpoint file (mmengine's ``{'state_dict':
    ...}``, PySlowFast's ``model_state`` or a bare state dict), with a
    ``module.`` prefix of wrapped models removed.  Loaded with
    ``weights_only=True``."""
    if not isinstance(filename, str) or not filename:
        raise ValueError(f'pretrained must be a checkpoint path, got '
                         f'{filename!r}')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'pretrained checkpoint "{filename}" does not '
                                'exist')
    allow_mmengine_checkpoint_globals()
    ckpt = load_checkpoint_file(filename, map_location='cpu')
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model_state', 'model_state_dict'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f'{filename} holds no state dict of tensors (looked '
                         'for "state_dict", "model_state", '
                         '"model_state_dict" or a bare state dict)')
    out = OrderedDict()
    for key, value in state.items():
        out[key[len('module.'):] if key.startswith('module.') else key] = \
            value
    return out


def load_encoder_checkpoint(module: nn.Module,
                            filename: str,
                            prefix_map: Dict[str, str],
                            strict: bool = True,
                            logger: str = 'current') -> LoadReport:
    """Load the tensors of a checkpoint whose names start with a mapped prefix.

    Args:
        module: the model to fill.
        filename: checkpoint path (see :func:`read_state_dict`).
        prefix_map: checkpoint prefix -> module prefix, e.g.
            ``{'visual_backbone.cnn.': 'cnn.'}``.  Checkpoint keys under no
            mapped prefix are ignored (reported); module keys under a mapped
            module prefix must all be found.
        strict: raise if module keys under a mapped prefix are missing or
            have another shape.
        logger: mmengine logger name for the report.

    Returns:
        :class:`LoadReport`.
    """
    if not prefix_map:
        raise ValueError('prefix_map must name at least one prefix')
    state = read_state_dict(filename)
    own = module.state_dict()
    report = LoadReport(filename=filename)
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
            report.unexpected.append(key)
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
    if strict and (report.missing or report.shape_mismatch):
        raise RuntimeError(
            'the pretrained checkpoint does not fit the model (pass '
            'strict_pretrained=False to load it anyway):\n' + report.summary())
    if not to_load:
        raise RuntimeError('nothing was loaded from the pretrained '
                           f'checkpoint:\n{report.summary()}')
    module.load_state_dict(to_load, strict=False)
    level = logging.WARNING if (report.missing or report.shape_mismatch
                                or report.unexpected) else logging.INFO
    print_log(report.summary(), logger=logger, level=level)
    return report


def extract_state_dict(checkpoint: Any,
                       entries: Sequence[str] = STATE_DICT_ENTRIES
                       ) -> Tuple[Dict[str, Tensor], str]:
    """The model weights of a loaded checkpoint, without a ``module.`` prefix.

    Returns:
        ``(state_dict, entry)``: ``entry`` is the key it was found under, or
        ``''`` for a bare state dict.
    """
    if not isinstance(checkpoint, Mapping):
        raise ConversionError('a checkpoint must be a dict, got '
                              f'{type(checkpoint).__name__}')
    for entry in entries:
        if isinstance(checkpoint.get(entry), Mapping):
            state, found = checkpoint[entry], entry
            break
    else:
        if checkpoint and all(isinstance(v, Tensor)
                              for v in checkpoint.values()):
            state, found = checkpoint, ''
        else:
            raise ConversionError(
                f'no model weights found: the checkpoint has none of the '
                f'entries {list(entries)} and is not a bare state dict (its '
                f'keys: {sorted(map(str, checkpoint))[:10]})')
    state = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    if not state:
        raise ConversionError(f'the "{found}" entry holds no tensors')
    return state, found
