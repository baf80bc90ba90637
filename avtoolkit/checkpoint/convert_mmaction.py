"""Export the pretrained CNN of an avtoolkit checkpoint as the backbone
weights of an mmaction2 recognizer (``tools/convert/to_mmaction.py``).

Our visual CNNs *are* mmaction2 classes (``ResNet3dSlowFast`` for the paper,
``ResNet3d`` for the release variant), so the export is a rename, checked
key by key and shape by shape against the backbone built from a config and
refused on any difference.  The audio CNN (``AudioResNet``) has no mmaction2
counterpart.  docs/checkpoints.md has the details.
"""
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config
from torch import Tensor, nn

from avtoolkit.checkpoint.config_text import (ConfigTextError,
                                           parse_config_text)
from avtoolkit.checkpoint.io import (ConversionError, plain_config,
                                     read_checkpoint, save_checkpoint)
from avtoolkit.checkpoint.loading import extract_state_dict

ROLES = ('visual', 'audio')


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
        # Read as data: Config.fromstring would execute the stored text.
        try:
            stored = parse_config_text(checkpoint_meta['cfg'],
                                       'the config stored in the checkpoint')
        except ConfigTextError as err:
            raise ConversionError(f'{err}; pass the model config with '
                                  '--config') from err
        sources.append((Config(stored), 'the config stored in the checkpoint',
                        False))
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
        return module, plain_config(backbone_cfg), f'model.backbone of {where}'
    cnn_cfg = _cnn_config_from(cfg, modality)
    if cnn_cfg is None:
        raise ConversionError(
            f'{where} defines neither model.backbone (an mmaction2 '
            f'recognizer) nor {modality}_backbone.cnn (an avtoolkit model)')
    module = _models_registry().build(cnn_cfg)
    return module, plain_config(cnn_cfg), f'{modality}_backbone.cnn of {where}'


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


def convert_to_mmaction(checkpoint: str, out: str, modality: str = 'visual',
                        config: Optional[str] = None,
                        prefix: str = 'backbone.',
                        force: bool = False) -> Tuple[dict, int]:
    """Write the ``modality`` CNN of an avtoolkit checkpoint as mmaction2
    backbone weights (``tools/convert/to_mmaction.py``).

    Args:
        checkpoint: the avtoolkit checkpoint.
        out: the file to write; refused if it exists, unless ``force``.
        modality: ``'visual'`` or ``'audio'``.
        config: the config to check the weights against (see
            :func:`resolve_mmaction_target`).
        prefix: prefix of the output keys.

    Returns:
        ``(meta, number of tensors written)``.
    """
    if osp.exists(out) and not force:
        raise FileExistsError(f'"{out}" exists; pass --force to '
                              'overwrite it')
    loaded = read_checkpoint(checkpoint)
    state, entry = extract_state_dict(loaded, f'checkpoint "{checkpoint}"')
    source_meta = loaded.get('meta') if isinstance(
        loaded.get('meta'), Mapping) else {}
    target, backbone_cfg, where = resolve_mmaction_target(
        modality, config, source_meta)
    weights = export_to_mmaction(state, modality, target, prefix)
    meta = dict(
        converted_from=osp.abspath(checkpoint),
        source_entry=entry,
        modality=modality,
        backbone_type=type(target).__name__,
        backbone_cfg=backbone_cfg,
        checked_against=where,
        key_prefix=prefix)
    for key in ('epoch', 'iter', 'seed', 'experiment_name'):
        if key in source_meta:
            meta[f'source_{key}'] = source_meta[key]
    save_checkpoint(out, weights, meta, force=force)
    return meta, len(weights)
