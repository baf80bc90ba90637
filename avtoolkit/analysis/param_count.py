"""Parameter counts of a model, with the Transformer layers reported apart.

``transformer_layers`` is the figure the AVBERT paper and the authors' release
compare across sharing schemes: the weights of the Transformer layers (dense
or factorized maps with their biases, both LayerNorms, the orthogonal
generators), embeddings excluded.  It is read from the ``transformers``
submodule of every :class:`~avtoolkit.models.necks.SharedLowRankTransformer`
in the model.  Shared parameters are counted once everywhere.
"""
from typing import Dict, Iterable, List, Optional

from torch import nn


def _count(params: Iterable[nn.Parameter]) -> int:
    seen = set()
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _necks(model: nn.Module) -> List[nn.Module]:
    from avtoolkit.models.necks import SharedLowRankTransformer
    return [m for m in model.modules()
            if isinstance(m, SharedLowRankTransformer)]


def count_parameters(model: nn.Module) -> Dict[str, object]:
    """Parameter counts of ``model``.

    Returns:
        dict with

        * ``total``: all parameters; ``trainable``: those with
          ``requires_grad``;
        * ``modules``: per top-level child module (e.g. ``visual_backbone``,
          ``audio_backbone``, ``neck``, ``data_preprocessor``);
        * ``neck``: per part of the (first) Transformer neck: ``embeddings``,
          ``transformers`` and each stack ``transformers.<name>``;
        * ``transformer_layers``: Transformer layer weights of every neck,
          embeddings excluded.
    """
    counts: Dict[str, object] = {
        'total': _count(model.parameters()),
        'trainable': _count(p for p in model.parameters() if p.requires_grad),
        'modules': {
            name: _count(child.parameters())
            for name, child in model.named_children()
        },
    }
    necks = _necks(model)
    neck_parts: Dict[str, int] = {}
    if necks:
        neck = necks[0]
        neck_parts['embeddings'] = _count(neck.embeddings.parameters())
        neck_parts['transformers'] = _count(neck.transformers.parameters())
        for name, stack in neck.transformers.items():
            neck_parts[f'transformers.{name}'] = _count(stack.parameters())
    counts['neck'] = neck_parts
    counts['transformer_layers'] = _count(
        p for neck in necks for p in neck.transformers.parameters())
    return counts


def build_model_from_config(config: str,
                            cfg_options: Optional[dict] = None) -> nn.Module:
    """Build ``cfg.model`` of a config file in the avtoolkit scope."""
    from mmengine.config import Config

    from avtoolkit.registry import MODELS
    from avtoolkit.utils import register_all_modules

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {config} has no "model" entry')
    register_all_modules(init_default_scope=True)
    return MODELS.build(cfg.model)


def count_parameters_from_config(
        config: str, cfg_options: Optional[dict] = None) -> Dict[str, object]:
    """:func:`count_parameters` of the model built from ``config``."""
    model = build_model_from_config(config, cfg_options)
    counts = count_parameters(model)
    counts = {'config': config, 'model': type(model).__name__, **counts}
    return counts


def format_counts(counts: Dict[str, object]) -> str:
    """Human-readable lines of :func:`count_parameters` output."""
    lines: List[str] = []
    if 'config' in counts:
        lines.append(f"config: {counts['config']} ({counts['model']})")
    width = 40

    def row(name: str, value: int, indent: int = 0) -> None:
        lines.append(f"{' ' * indent}{name:<{width - indent}}{value:>15,}")

    for name, value in counts['modules'].items():
        row(name, value)
    for name, value in counts['neck'].items():
        row(f'neck.{name}', value, indent=2)
    row('transformer_layers', counts['transformer_layers'])
    row('trainable', counts['trainable'])
    row('total', counts['total'])
    return '\n'.join(lines)
