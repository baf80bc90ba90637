"""Convert the checkpoint released with the AVBERT paper (PySlowFast code
base) into our release-variant model (``tools/convert/from_official.py``).

The CNNs are mapped module by module from PySlowFast's names; the
Transformers are not mapped (their names in the release are unknown and the
layouts differ).  docs/checkpoints.md gives the table, what is inferred and
what is detected.
"""
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config
from torch import Tensor, nn

from avtoolkit.checkpoint.io import (ConversionError, file_sha256,
                                     read_checkpoint, save_checkpoint)
from avtoolkit.checkpoint.loading import extract_state_dict
from avtoolkit.registry import MODELS

ROLES = ('visual', 'audio')
_CACHE_NAME = re.compile(r'_B\d*$')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_RELEASE_CONFIGS = (
    osp.join(REPO_ROOT, 'configs', '_base_', 'models',
             'visual_resnet3d_release.py'),
    osp.join(REPO_ROOT, 'configs', '_base_', 'models',
             'audio_resnet50_release.py'),
)


_STEMS = {
    'visual': {
        'conv1.conv': 's1.pathway0_stem.conv',
        'conv1.bn': 's1.pathway0_stem.bn',
    },
    'audio_full': {  # inferred (no released checkpoint has this stem)
        'conv1.conv': 's1.pathway0_stem.conv',
        'conv1.bn': 's1.pathway0_stem.bn',
    },
    'audio_separable': {  # inferred
        'conv1.0.conv': 's1.pathway0_stem.conv_f',
        'conv1.0.bn': 's1.pathway0_stem.bn_f',
        'conv1.1.conv': 's1.pathway0_stem.conv_t',
        'conv1.1.bn': 's1.pathway0_stem.bn_t',
    },
}
_BRANCHES = {
    'conv1.conv': 'branch2.a',
    'conv1.bn': 'branch2.a_bn',
    'conv2.conv': 'branch2.b',
    'conv2.bn': 'branch2.b_bn',
    'conv3.conv': 'branch2.c',
    'conv3.bn': 'branch2.c_bn',
    'downsample.conv': 'branch1',
    'downsample.bn': 'branch1_bn',
}
_BLOCK_KEY = re.compile(r'^layer(\d+)\.(\d+)\.(\w+\.\w+)\.(\w+)$')
_DETECT = {
    'visual': ('s1.pathway0_stem.conv.weight', 5),
    'audio': ('s2.pathway0_res0.branch2.a.weight', 4),
}


def _cnn_kind(cnn: nn.Module, role: str) -> str:
    name = type(cnn).__name__
    if role == 'visual':
        if name == 'ResNet3dSlowFast':
            raise ConversionError(
                'the target visual CNN is a SlowFast network (the paper\'s '
                'variant); the authors\' release has a single-pathway '
                'ResNet3d, so there is nothing to map it from. Convert into '
                'a release-variant config (visual CNN from '
                'configs/_base_/models/visual_resnet3d_release.py).')
        if name != 'ResNet3d':
            raise ConversionError(f'no official mapping for a {name} visual '
                                  'CNN (only mmaction2 ResNet3d)')
        return 'visual'
    if name != 'AudioResNet':
        raise ConversionError(f'no official mapping for a {name} audio CNN '
                              '(only AudioResNet)')
    return f'audio_{cnn.stem_type}'


def official_cnn_key(key: str, kind: str) -> Optional[str]:
    """Official (PySlowFast) name of one of our CNN state-dict keys.

    Args:
        key: key relative to the CNN, e.g. ``'layer2.0.downsample.bn.bias'``.
        kind: ``'visual'``, ``'audio_full'`` or ``'audio_separable'``.

    Returns:
        the official key relative to the CNN's prefix, e.g.
        ``'s3.pathway0_res0.branch1_bn.bias'``, or None for a key outside the
        table.
    """
    module, _, param = key.rpartition('.')
    stem = _STEMS[kind].get(module)
    if stem is not None:
        return f'{stem}.{param}'
    match = _BLOCK_KEY.match(key)
    if match is None:
        return None
    layer, block, sub, param = match.groups()
    branch = _BRANCHES.get(sub)
    if branch is None:
        return None
    return f's{int(layer) + 1}.pathway0_res{block}.{branch}.{param}'


def official_cnn_table(cnn: nn.Module, role: str) -> Dict[str, str]:
    """``{official key: our key}`` for every mappable key of ``cnn``.

    Both sides are relative (to the official prefix and to
    ``<role>_backbone.cnn.``).
    """
    kind = _cnn_kind(cnn, role)
    table = {}
    for key in cnn.state_dict():
        official = official_cnn_key(key, kind)
        if official is not None:
            table[official] = key
    return table


def detect_official_prefix(state_dict: Mapping[str, Tensor],
                           role: str) -> Optional[str]:
    """Prefix of the ``role`` CNN in an official state dict, None if absent."""
    suffix, ndim = _DETECT[role]
    found = [
        k[:-len(suffix)] for k, v in state_dict.items()
        if k.endswith(suffix) and (k == suffix or k[-len(suffix) - 1] == '.')
        and v.dim() == ndim
    ]
    if len(found) > 1:
        raise ConversionError(
            f'several {role} CNNs in the checkpoint (prefixes {found}); '
            f'choose one with --{role}-prefix')
    return found[0] if found else None


def is_cache_key(key: str) -> bool:
    """Whether ``key`` is one of the release's ``_B`` caches of ``Σ``."""
    return bool(_CACHE_NAME.search(key.rsplit('.', 1)[-1]))


def _apply_renames(state: Mapping[str, Tensor],
                   renames: Sequence[Tuple[str, str]]) -> Dict[str, Tensor]:
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        if key in out:
            raise ConversionError(f'--rename-prefix maps two keys onto '
                                  f'"{key}"')
        out[key] = value
    return out


@dataclass
class OfficialConversion:
    """Outcome of :func:`convert_official_state_dict`.

    Attributes:
        state_dict: converted weights, keyed like the target model.
        sources: our key -> official key it came from.
        prefixes: role -> official prefix used (None: CNN not found).
        missing: target keys that received no weight.
        unexpected: official keys left unused (``_B`` caches excluded).
        dropped_caches: the ``_B`` cache keys dropped.
    """
    state_dict: Dict[str, Tensor]
    sources: Dict[str, str]
    prefixes: Dict[str, Optional[str]]
    missing: List[str]
    unexpected: List[str]
    dropped_caches: List[str] = field(default_factory=list)


def convert_official_state_dict(
        official: Mapping[str, Tensor],
        target: nn.Module,
        prefixes: Optional[Mapping[str, Optional[str]]] = None,
        renames: Sequence[Tuple[str, str]] = ()) -> OfficialConversion:
    """Map the release's weights onto ``target`` (see the module docstring).

    Args:
        official: the release's state dict.
        target: our model, with ``visual_backbone``/``audio_backbone``
            (``ClipSequenceEncoder``) submodules as far as present.
        prefixes: role -> official prefix of that CNN, to override detection.
        renames: ``(old, new)`` official key prefixes, rewritten first.

    Raises:
        ConversionError: a mapped tensor has a different shape than its
            target, or nothing at all could be mapped.
    """
    prefixes = dict(prefixes or {})
    state = {k: v for k, v in official.items() if not is_cache_key(k)}
    dropped = sorted(k for k in official if is_cache_key(k))
    state = _apply_renames(state, renames)
    target_state = target.state_dict()

    out: Dict[str, Tensor] = {}
    sources: Dict[str, str] = {}
    used_prefixes: Dict[str, Optional[str]] = {}
    for role in ROLES:
        backbone = getattr(target, f'{role}_backbone', None)
        cnn = getattr(backbone, 'cnn', None)
        if not isinstance(cnn, nn.Module):
            continue
        table = official_cnn_table(cnn, role)
        prefix = prefixes.get(role)
        if prefix is None:
            prefix = detect_official_prefix(state, role)
        used_prefixes[role] = prefix
        if prefix is None:
            continue
        for official_rel, ours_rel in table.items():
            key = prefix + official_rel
            if key in state:
                ours = f'{role}_backbone.cnn.{ours_rel}'
                out[ours] = state[key]
                sources[ours] = key
    used = set(sources.values())
    for key, value in state.items():  # keys renamed onto ours, taken as is
        if key not in used and key in target_state and key not in out:
            out[key] = value
            sources[key] = key
            used.add(key)

    mismatched = [(k, tuple(v.shape), tuple(target_state[k].shape))
                  for k, v in out.items() if v.shape != target_state[k].shape]
    if mismatched:
        raise ConversionError(
            f'{len(mismatched)} official tensors do not fit their target '
            '(our key, official shape, our shape): ' + '; '.join(
                f'{k} <- {sources[k]} {a} vs {b}'
                for k, a, b in mismatched[:5]) +
            ('' if len(mismatched) <= 5 else ' ...') +
            ' - is the config the release variant?')
    if not out:
        raise ConversionError(
            'no official weight could be mapped (CNN prefixes found: '
            f'{used_prefixes}); check the file, or pass --visual-prefix / '
            '--audio-prefix / --rename-prefix')
    return OfficialConversion(
        state_dict=out,
        sources=sources,
        prefixes=used_prefixes,
        missing=sorted(k for k in target_state if k not in out),
        unexpected=sorted(k for k in state if k not in used),
        dropped_caches=dropped)


class _Backbones(nn.Module):
    """Holds the backbones of base configs that define no ``model``."""


def build_target_model(configs: Sequence[str]) -> nn.Module:
    """Our model to convert into, from config files.

    A config with ``model`` is built whole (e.g. an ``AVBERTEncoder``);
    otherwise the ``visual_backbone`` / ``audio_backbone`` dicts of the given
    base configs are built under those names.
    """
    models = MODELS
    model_cfgs, parts = [], {}
    for path in configs:
        if not osp.isfile(path):
            raise FileNotFoundError(f'config "{path}" does not exist')
        cfg = Config.fromfile(path)
        if isinstance(cfg.get('model'), Mapping):
            model_cfgs.append((path, cfg.model))
        for role in ROLES:
            name = f'{role}_backbone'
            if isinstance(cfg.get(name), Mapping):
                if name in parts:
                    raise ConversionError(f'{name} is defined by two configs')
                parts[name] = cfg[name]
    if len(model_cfgs) > 1:
        raise ConversionError('more than one config defines model: '
                              f'{[p for p, _ in model_cfgs]}')
    if model_cfgs:
        return models.build(model_cfgs[0][1])
    if not parts:
        raise ConversionError(f'the configs {list(configs)} define neither '
                              'model nor visual_backbone / audio_backbone')
    holder = _Backbones()
    for name, cfg in parts.items():
        holder.add_module(name, models.build(cfg))
    return holder


def convert_from_official(checkpoint: str, out: str,
                          configs: Optional[Sequence[str]] = None,
                          trust: bool = False,
                          prefixes: Optional[Dict[str, str]] = None,
                          renames: Sequence[Tuple[str, str]] = (),
                          force: bool = False
                          ) -> Tuple[dict, OfficialConversion]:
    """Convert the checkpoint released with the paper into ours
    (``tools/convert/from_official.py``).

    Args:
        checkpoint: the official checkpoint.
        out: the file to write; refused if it exists, unless ``force``.
        configs: config(s) of the model to convert into (default: the
            release visual and audio CNN base configs).
        trust: unpickle without restrictions (see :func:`read_checkpoint`).
        prefixes: official prefix of each CNN (``{'visual': ..., 'audio':
            ...}``; a missing or None entry is detected).
        renames: ``(old, new)`` prefix rewrites applied before mapping.

    Returns:
        ``(meta, the conversion)``.
    """
    if osp.exists(out) and not force:
        raise FileExistsError(f'"{out}" exists; pass --force to '
                              'overwrite it')
    configs = list(configs or DEFAULT_RELEASE_CONFIGS)
    target = build_target_model(configs)

    loaded = read_checkpoint(checkpoint, trust=trust, trust_option='--trust')
    official, entry = extract_state_dict(loaded, f'checkpoint "{checkpoint}"')
    result = convert_official_state_dict(
        official, target, prefixes=dict(prefixes or {}), renames=renames)

    meta = dict(
        converted_from=osp.abspath(checkpoint),
        source_sha256=file_sha256(checkpoint),
        source_entry=entry,
        configs=[osp.abspath(c) for c in configs],
        cnn_prefixes=result.prefixes,
        renames=[list(r) for r in renames],
        num_mapped=len(result.state_dict),
        missing_keys=result.missing,
        unexpected_keys=result.unexpected,
        dropped_cache_keys=result.dropped_caches,
        note='CNN stage/block names follow PySlowFast; the audio CNN names '
        'and the CNN prefixes are inferred, the Transformers are not mapped')
    if isinstance(loaded, Mapping) and isinstance(loaded.get('epoch'), int):
        meta['source_epoch'] = loaded['epoch']
    save_checkpoint(out, result.state_dict, meta, force=force)
    return meta, result
