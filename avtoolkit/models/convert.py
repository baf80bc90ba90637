"""Checkpoint conversion: avtoolkit -> mmaction2, authors' release -> ours.

Two conversions, each behind a thin script in ``tools/convert/``:

1. :func:`to_mmaction_main` (``tools/convert/to_mmaction.py``) writes the
   pretrained visual CNN of an avtoolkit checkpoint (``visual_backbone.cnn.*``)
   as ``backbone.*`` weights that a plain mmaction2 recognizer loads with
   ``load_from=OUT`` in its config.  Our visual CNNs *are* mmaction2 classes
   (``ResNet3dSlowFast`` for the paper, ``ResNet3d`` for the release variant),
   so the conversion is a rename; it is checked key by key and shape by shape
   against the backbone built from a config, and refused on any difference.
   With ``--prefix ''`` the keys are written bare, for the backbone's own
   ``pretrained=OUT`` argument (``ResNet3dSlowFast`` loads it strictly).
   mmaction2 1.1's recognizers take no ``init_cfg``, and these two backbones
   override ``init_weights`` and ignore theirs, so a ``Pretrained`` init_cfg
   is not a way to load them.

   The audio CNN, :class:`~avtoolkit.models.backbones.AudioResNet`, is not an
   mmaction2 class.  mmaction2's ``ResNetAudio`` has another structure (a stem
   of parallel 9x1 and 1x9 convolutions whose outputs are summed; no BN after
   the 3x3 convolution of its bottlenecks, which are factorised in the first
   stages), so its state dict does not match.  ``--modality audio`` is refused
   unless ``--config`` names an mmaction2 recognizer whose backbone has exactly
   the same keys and shapes.

2. :func:`from_official_main` (``tools/convert/from_official.py``) loads the
   checkpoint released with the paper (PySlowFast code base) into our
   release-variant model.

   Layout of that file.  PySlowFast's own saver writes ``{'epoch',
   'model_state', 'optimizer_state', 'cfg'}``; the authors' fine-tuning script
   reads the released pretraining checkpoint from ``checkpoint['state_dict']``
   and its own fine-tuned ones from ``'model_state_dict'``.  All three entries
   are accepted, as is a bare state dict; a leading ``module.`` (from
   ``DistributedDataParallel``) is removed.

   ``cfg`` is a pickled yacs/fvcore ``CfgNode``, which
   ``torch.load(weights_only=True)`` refuses.  Without ``--trust`` the file is
   still loaded with ``weights_only=True``: globals whose class name is
   ``CfgNode`` are read as plain ``collections.OrderedDict`` (their content is
   kept, no code of theirs runs); any other non-tensor global is refused with a
   message.  ``--trust`` switches to ``weights_only=False`` (arbitrary code
   execution if the file is malicious; it also needs ``yacs``/``fvcore``
   importable to rebuild the ``CfgNode``).

   Mapping.  Entries whose last name component ends in ``_B`` (optionally
   followed by digits) are the release's caches of the orthogonal matrices
   ``Σ`` and are dropped.  The CNNs are mapped module by module with the table
   below.  The PySlowFast names of the visual CNN (stage ``s<k>``, block
   ``pathway0_res<j>``, ``branch1``/``branch2.{a,b,c}`` and their ``*_bn``,
   stem ``s1.pathway0_stem.{conv,bn}``) are those of PySlowFast's
   ``ResNet``/``ResBlock``/``BottleneckTransform``/``ResNetBasicStem``.  Which
   *prefix* the release puts in front of each CNN (some ``avbert.<...>.``) is
   not documented, so it is detected: the visual CNN is where
   ``s1.pathway0_stem.conv.weight`` is a 5-D tensor, the audio CNN where
   ``s2.pathway0_res0.branch2.a.weight`` is 4-D (override with
   ``--visual-prefix``/``--audio-prefix``).  The audio CNN's names are
   **inferred** by analogy with the visual ones (same stage/block/branch
   names, 2-D); the names of its separable stem (``conv_f``/``bn_f`` for the
   9x1 convolution, ``conv_t``/``bn_t`` for the 1x9 one) are a guess.  Where
   the real file differs, ``--rename-prefix OLD=NEW`` rewrites official key
   prefixes before mapping; a renamed key that equals one of our keys (e.g.
   ``--rename-prefix avbert.visual_proj.=visual_backbone.proj.``) is taken
   as is.

   ===============================  ==========================================
   ours (``<role>_backbone.cnn.``)  official (``<detected prefix>``)
   ===============================  ==========================================
   ``conv1.conv`` / ``conv1.bn``    ``s1.pathway0_stem.conv`` / ``.bn``
   ``conv1.0.conv`` / ``.bn``       ``s1.pathway0_stem.conv_f`` / ``.bn_f``
   (audio, separable stem)          (inferred)
   ``conv1.1.conv`` / ``.bn``       ``s1.pathway0_stem.conv_t`` / ``.bn_t``
                                    (inferred)
   ``layer<i>.<j>.conv1.conv``      ``s<i+1>.pathway0_res<j>.branch2.a``
   ``layer<i>.<j>.conv1.bn``        ``s<i+1>.pathway0_res<j>.branch2.a_bn``
   ``layer<i>.<j>.conv2.{conv,bn}`` ``s<i+1>.pathway0_res<j>.branch2.{b,b_bn}``
   ``layer<i>.<j>.conv3.{conv,bn}`` ``s<i+1>.pathway0_res<j>.branch2.{c,c_bn}``
   ``layer<i>.<j>.downsample.conv`` ``s<i+1>.pathway0_res<j>.branch1``
   ``layer<i>.<j>.downsample.bn``   ``s<i+1>.pathway0_res<j>.branch1_bn``
   ===============================  ==========================================

   Parameter and buffer names (``weight``, ``bias``, ``running_mean``,
   ``running_var``, ``num_batches_tracked``) are the same on both sides.

   The Transformers are not mapped.  Their names in the release are not
   known, and the layouts differ: our factorised layer keeps the query, key and
   value maps in one module with stacked ``(3, ...)`` factors, and ``Σ`` is
   generated from a full square matrix, while the release parametrises it from
   an upper-triangular one.  Their keys are reported as unexpected, and our
   Transformer (and CNN projection) keys as missing.

Every output file holds only tensors and plain Python values (``meta``), so it
loads with ``torch.load(weights_only=True)``.  An existing output is never
overwritten without ``--force``.
"""
import argparse
import collections
import hashlib
import os
import os.path as osp
import pickle
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

import torch
from mmengine.config import Config, ConfigDict
from torch import Tensor, nn

from avtoolkit.utils.checkpoint import (UnsafeCheckpointError,
                                        allow_mmengine_checkpoint_globals,
                                        load_checkpoint_file)

ROLES = ('visual', 'audio')
STATE_DICT_ENTRIES = ('state_dict', 'model_state', 'model_state_dict')
_CONFIG_CLASS = 'CfgNode'
_CACHE_NAME = re.compile(r'_B\d*$')
_GLOBAL_IN_ERROR = re.compile(r'GLOBAL ([\w.]+) was not an allowed global')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_RELEASE_CONFIGS = (
    osp.join(REPO_ROOT, 'configs', '_base_', 'models',
             'visual_resnet3d_release.py'),
    osp.join(REPO_ROOT, 'configs', '_base_', 'models',
             'audio_resnet50_release.py'),
)


class ConversionError(ValueError):
    """A checkpoint cannot be converted as asked (the message says why)."""


# ================================================================ file I/O
def _unsafe_globals(path: str, error: BaseException) -> List[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # legacy (non-zip) file: read the names off the error
        text = str(error) + str(getattr(error, '__cause__', ''))
        return _GLOBAL_IN_ERROR.findall(text)


def read_checkpoint(path: str, trust: bool = False) -> Any:
    """Load a checkpoint file on the CPU.

    Without ``trust`` only tensors, plain containers, mmengine's logged state
    and, read as ``OrderedDict``, pickled ``CfgNode`` configs are accepted
    (``torch.load(weights_only=True)``); anything else raises
    :class:`~avtoolkit.utils.UnsafeCheckpointError`.  With ``trust`` the file
    is unpickled without restrictions.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint "{path}" does not exist')
    if trust:
        try:
            return torch.load(path, map_location='cpu', weights_only=False)
        except (ModuleNotFoundError, AttributeError) as err:
            raise ConversionError(
                f'"{path}" pickles an object whose class cannot be imported '
                f'here ({err}); install the package that defines it (yacs / '
                'fvcore for PySlowFast configs) or load without --trust, '
                'which reads configs as plain dicts') from err
    allow_mmengine_checkpoint_globals()
    substitutes: List[Tuple[Any, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(substitutes):
                return load_checkpoint_file(path)
        except UnsafeCheckpointError as err:
            done = {name for _, name in substitutes}
            names = [n for n in _unsafe_globals(path, err.__cause__ or err)
                     if n not in done]
            configs = [n for n in names if n.rsplit('.', 1)[-1] ==
                       _CONFIG_CLASS]
            others = [n for n in names if n not in configs]
            if others or not configs:
                shown = ', '.join(others) if others else 'unknown objects'
                raise UnsafeCheckpointError(
                    f'Refusing to load "{path}": it pickles {shown}, which '
                    'is neither a tensor nor a known config class. If you '
                    'trust the file, pass --trust (unrestricted unpickling).'
                ) from err
            substitutes += [(collections.OrderedDict, n) for n in configs]


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


def _plain(value: Any) -> Any:
    """Config values as builtins only (safe for ``weights_only`` loading)."""
    if isinstance(value, (ConfigDict, Mapping)):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def save_checkpoint(path: str, state_dict: Dict[str, Tensor], meta: dict,
                    force: bool = False) -> None:
    """Write ``{'meta': meta, 'state_dict': state_dict}`` atomically.

    Tensors are detached, moved to the CPU and made contiguous.  Refuses an
    existing ``path`` unless ``force``.
    """
    if osp.exists(path) and not force:
        raise FileExistsError(f'"{path}" exists; pass --force to overwrite '
                              'it')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = dict(
        meta=_plain(meta),
        state_dict={
            k: v.detach().cpu().contiguous().clone()
            for k, v in state_dict.items()
        })
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _compare(source: Mapping[str, Tensor],
             target: Mapping[str, Tensor]) -> Tuple[List, List, List]:
    missing = sorted(k for k in target if k not in source)
    unexpected = sorted(k for k in source if k not in target)
    mismatched = sorted(
        (k, tuple(source[k].shape), tuple(target[k].shape)) for k in source
        if k in target and source[k].shape != target[k].shape)
    return missing, unexpected, mismatched


def _head(items: Sequence, n: int = 5) -> str:
    shown = ', '.join(map(str, items[:n]))
    return shown + (f', ... ({len(items)} in all)' if len(items) > n else '')


# ======================================================= avtoolkit -> mmaction
def _models_registry():
    from avtoolkit.registry import MODELS
    return MODELS


def _cnn_config_from(cfg: Config, role: str) -> Optional[dict]:
    """``<role>_backbone.cnn`` of a model config or of a base config."""
    key = f'{role}_backbone'
    model = cfg.get('model')
    holders = ([model] if isinstance(model, Mapping) else []) + [cfg]
    for holder in holders:
        backbone = holder.get(key)
        if isinstance(backbone, Mapping) and isinstance(
                backbone.get('cnn'), Mapping):
            return backbone['cnn']
    return None


def resolve_mmaction_target(modality: str,
                            config: Optional[str] = None,
                            checkpoint_meta: Optional[Mapping] = None
                            ) -> Tuple[nn.Module, dict, str]:
    """The backbone that the exported weights must fit.

    Looked up in ``config`` (an mmaction2 recognizer config with
    ``model.backbone``, or one of ours with
    ``[model.]<modality>_backbone.cnn``) or, without it, in the config text
    that mmengine's Runner stores in ``checkpoint['meta']['cfg']``.

    Returns:
        ``(module, backbone config, where it came from)``.
    """
    sources = []
    if config is not None:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config "{config}" does not exist')
        sources.append((Config.fromfile(config), f'config {config}', True))
    elif checkpoint_meta is not None and isinstance(
            checkpoint_meta.get('cfg'), str):
        try:
            sources.append((Config.fromstring(checkpoint_meta['cfg'], '.py'),
                            'the config stored in the checkpoint', False))
        except Exception as err:  # unparsable text: say so below
            raise ConversionError('the config stored in the checkpoint '
                                  f'cannot be parsed ({err}); pass --config'
                                  ) from err
    if not sources:
        raise ConversionError(
            'cannot check the exported weights: no --config given and the '
            'checkpoint stores no config; pass the model config (or the '
            'mmaction2 recognizer config) with --config')
    cfg, where, explicit = sources[0]
    model = cfg.get('model')
    if explicit and isinstance(model, Mapping) and isinstance(
            model.get('backbone'), Mapping):
        backbone_cfg = model['backbone']
        from mmaction.registry import MODELS as MMACTION_MODELS
        module = MMACTION_MODELS.build(backbone_cfg)
        return module, _plain(backbone_cfg), f'model.backbone of {where}'
    cnn_cfg = _cnn_config_from(cfg, modality)
    if cnn_cfg is None:
        raise ConversionError(
            f'{where} defines neither model.backbone (an mmaction2 '
            f'recognizer) nor {modality}_backbone.cnn (an avtoolkit model)')
    module = _models_registry().build(cnn_cfg)
    return module, _plain(cnn_cfg), f'{modality}_backbone.cnn of {where}'


def export_to_mmaction(state_dict: Mapping[str, Tensor],
                       modality: str,
                       target: nn.Module,
                       prefix: str = 'backbone.') -> Dict[str, Tensor]:
    """Select ``<modality>_backbone.cnn.*`` and rename it to ``prefix*``.

    Args:
        state_dict: the weights of an avtoolkit model.
        modality: ``'visual'`` or ``'audio'``.
        target: the mmaction2 backbone the weights must fit exactly.
        prefix: prefix of the output keys.

    Raises:
        ConversionError: no such CNN in ``state_dict``, the target is not an
            mmaction2 class, or keys / shapes differ.
    """
    if modality not in ROLES:
        raise ConversionError(f'modality must be one of {ROLES}, got '
                              f'{modality!r}')
    source_prefix = f'{modality}_backbone.cnn.'
    cnn = {
        k[len(source_prefix):]: v
        for k, v in state_dict.items() if k.startswith(source_prefix)
    }
    if not cnn:
        tops = sorted({k.split('.', 1)[0] for k in state_dict})
        raise ConversionError(f'no "{source_prefix}*" weights in the '
                              f'checkpoint (its top-level modules: {tops})')
    cls = type(target)
    if not cls.__module__.startswith('mmaction.'):
        extra = ''
        if cls.__name__ == 'AudioResNet':
            extra = (' AudioResNet is avtoolkit\'s own audio CNN; mmaction2\'s'
                     ' ResNetAudio differs in structure (parallel 9x1 + 1x9 '
                     'stem summed, no BN after the 3x3 bottleneck '
                     'convolution, factorised early stages), so its weights '
                     'cannot be loaded into an mmaction2 recognizer.')
        raise ConversionError(
            f'the {modality} CNN is {cls.__module__}.{cls.__name__}, which is '
            f'not an mmaction2 class.{extra} Pass --config with an mmaction2 '
            'recognizer whose backbone has exactly these weights if you have '
            'one.')
    missing, unexpected, mismatched = _compare(cnn, target.state_dict())
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f'{len(missing)} backbone keys missing from the '
                         f'checkpoint ({_head(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} checkpoint keys the backbone '
                         f'lacks ({_head(unexpected)})')
        if mismatched:
            parts.append(f'{len(mismatched)} shape mismatches '
                         f'({_head(mismatched, 3)})')
        raise ConversionError(
            f'the {modality} CNN of the checkpoint does not match the '
            f'{cls.__name__} backbone: ' + '; '.join(parts))
    return {prefix + k: v for k, v in cnn.items()}


def _to_mmaction_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Write the pretrained CNN of an avtoolkit checkpoint as '
        'backbone weights of an mmaction2 recognizer.')
    parser.add_argument('checkpoint', help='avtoolkit checkpoint (.pth)')
    parser.add_argument('out', help='output file')
    parser.add_argument('--modality', choices=ROLES, default='visual')
    parser.add_argument(
        '--config',
        help='config to check the weights against: an mmaction2 recognizer '
        'config (model.backbone) or an avtoolkit config; default: the config '
        'stored in the checkpoint')
    parser.add_argument(
        '--prefix', default='backbone.',
        help="prefix of the output keys (default 'backbone.', for load_from; "
        "'' for the backbone's pretrained= argument)")
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT if it exists')
    return parser


def to_mmaction_main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point of ``tools/convert/to_mmaction.py``; returns the meta."""
    args = _to_mmaction_parser().parse_args(argv)
    if osp.exists(args.out) and not args.force:
        raise FileExistsError(f'"{args.out}" exists; pass --force to '
                              'overwrite it')
    from avtoolkit.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    checkpoint = read_checkpoint(args.checkpoint)
    state, entry = extract_state_dict(checkpoint)
    source_meta = checkpoint.get('meta') if isinstance(
        checkpoint.get('meta'), Mapping) else {}
    target, backbone_cfg, where = resolve_mmaction_target(
        args.modality, args.config, source_meta)
    out = export_to_mmaction(state, args.modality, target, args.prefix)
    meta = dict(
        converted_from=osp.abspath(args.checkpoint),
        source_entry=entry,
        modality=args.modality,
        backbone_type=type(target).__name__,
        backbone_cfg=backbone_cfg,
        checked_against=where,
        key_prefix=args.prefix)
    for key in ('epoch', 'iter', 'seed', 'experiment_name'):
        if key in source_meta:
            meta[f'source_{key}'] = source_meta[key]
    save_checkpoint(args.out, out, meta, force=args.force)
    print(f'wrote {len(out)} {type(target).__name__} tensors '
          f'("{args.prefix}*", checked against {where}) to {args.out}')
    return meta


# ==================================================== official -> avtoolkit
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
    models = _models_registry()
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


def _rename_pair(text: str) -> Tuple[str, str]:
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'expected OLD=NEW, got {text!r}')
    old, new = text.split('=', 1)
    if not old:
        raise argparse.ArgumentTypeError('OLD must not be empty')
    return old, new


def _from_official_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Convert the checkpoint released with the AVBERT paper '
        '(PySlowFast layout) into an avtoolkit checkpoint.')
    parser.add_argument('checkpoint', help='the official checkpoint (.pyth)')
    parser.add_argument('out', help='output file')
    parser.add_argument(
        '--config', action='append',
        help='config(s) of the release-variant model to convert into '
        '(repeatable; default: the release visual and audio CNN base '
        'configs)')
    parser.add_argument(
        '--trust', action='store_true',
        help='unpickle without restrictions (weights_only=False); only for '
        'files from a trusted source')
    parser.add_argument('--visual-prefix',
                        help='official prefix of the visual CNN '
                        '(default: detected)')
    parser.add_argument('--audio-prefix',
                        help='official prefix of the audio CNN '
                        '(default: detected)')
    parser.add_argument('--rename-prefix', action='append', default=[],
                        type=_rename_pair, metavar='OLD=NEW',
                        help='rewrite official key prefixes before mapping '
                        '(repeatable; the first matching rule applies)')
    parser.add_argument('--print-table', action='store_true',
                        help='print the official -> ours table of the CNNs')
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT if it exists')
    return parser


def _report(title: str, keys: Sequence[str], limit: int = 20) -> None:
    print(f'{title}: {len(keys)}')
    for key in keys[:limit]:
        print(f'  {key}')
    if len(keys) > limit:
        print(f'  ... and {len(keys) - limit} more')


def from_official_main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point of ``tools/convert/from_official.py``; returns the meta."""
    args = _from_official_parser().parse_args(argv)
    if osp.exists(args.out) and not args.force:
        raise FileExistsError(f'"{args.out}" exists; pass --force to '
                              'overwrite it')
    from avtoolkit.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    configs = args.config or list(DEFAULT_RELEASE_CONFIGS)
    target = build_target_model(configs)

    checkpoint = read_checkpoint(args.checkpoint, trust=args.trust)
    official, entry = extract_state_dict(checkpoint)
    result = convert_official_state_dict(
        official,
        target,
        prefixes=dict(visual=args.visual_prefix, audio=args.audio_prefix),
        renames=args.rename_prefix)

    if args.print_table:
        for ours, theirs in sorted(result.sources.items()):
            print(f'{theirs} -> {ours}')
    for role, prefix in result.prefixes.items():
        print(f'{role} CNN: ' + (f'found under "{prefix}"' if prefix is not
                                 None else 'not found in the checkpoint'))
    print(f'mapped tensors: {len(result.state_dict)}')
    print(f'dropped _B caches: {len(result.dropped_caches)}')
    _report('missing (not in the official file, left as initialised)',
            result.missing)
    _report('unexpected (official keys not used)', result.unexpected)

    meta = dict(
        converted_from=osp.abspath(args.checkpoint),
        source_sha256=_sha256(args.checkpoint),
        source_entry=entry,
        configs=[osp.abspath(c) for c in configs],
        cnn_prefixes=result.prefixes,
        renames=[list(r) for r in args.rename_prefix],
        num_mapped=len(result.state_dict),
        missing_keys=result.missing,
        unexpected_keys=result.unexpected,
        dropped_cache_keys=result.dropped_caches,
        note='CNN stage/block names follow PySlowFast; the audio CNN names '
        'and the CNN prefixes are inferred, the Transformers are not mapped')
    if isinstance(checkpoint, Mapping) and isinstance(
            checkpoint.get('epoch'), int):
        meta['source_epoch'] = checkpoint['epoch']
    save_checkpoint(args.out, result.state_dict, meta, force=args.force)
    print(f'wrote {args.out}')
    return meta


def run_cli(main: Callable[[Optional[Sequence[str]]], Any],
            argv: Optional[Sequence[str]] = None) -> int:
    """Run a converter entry point; user errors become a one-line message
    and exit status 1."""
    try:
        main(argv)
    except (ConversionError, UnsafeCheckpointError, FileExistsError,
            FileNotFoundError, pickle.UnpicklingError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


__all__ = [
    'ConversionError', 'read_checkpoint', 'extract_state_dict',
    'save_checkpoint', 'resolve_mmaction_target', 'export_to_mmaction',
    'to_mmaction_main', 'official_cnn_key', 'official_cnn_table',
    'detect_official_prefix', 'is_cache_key', 'convert_official_state_dict',
    'OfficialConversion', 'build_target_model', 'from_official_main',
    'run_cli'
]
