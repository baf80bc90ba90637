"""Parameter counts of the pretraining configs (tools/analysis/count_params).

The reference counts of the Transformer layers (embeddings excluded) are those
of the authors' release for the five sharing schemes of the paper's ablation.
"""
import importlib.util
import json
import os.path as osp

import pytest

from avtoolkit.analysis.param_count import (count_parameters,
                                         count_parameters_from_config,
                                         format_counts)

REFERENCE = {
    'configs/pretrain/k700_mid_part.py': 3_843_840,
    'configs/pretrain/ablations/k700_mid_none.py': 127_581_696,
    'configs/pretrain/ablations/k700_mid_layer.py': 21_263_616,
    'configs/pretrain/ablations/k700_mid_all.py': 7_087_872,
    'configs/pretrain/ablations/k700_mid_part-nolayer.py': 23_063_040,
}


def _load_tool(repo_root):
    path = osp.join(repo_root, 'tools/analysis/count_params.py')
    spec = importlib.util.spec_from_file_location('count_params_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('config,expected', sorted(REFERENCE.items()))
def test_reference_transformer_counts(repo_root, config, expected):
    counts = count_parameters_from_config(osp.join(repo_root, config))
    assert counts['model'] == 'AVBERT'
    assert counts['transformer_layers'] == expected
    assert counts['neck']['transformers'] == expected
    modules = counts['modules']
    assert modules['neck'] == (counts['neck']['embeddings'] +
                               counts['neck']['transformers'])
    # The CNNs are built too and counted apart.
    assert modules['visual_backbone'] > 1_000_000
    assert modules['audio_backbone'] > 1_000_000
    # and the pretraining heads
    assert modules['mep_head'] > 0 and modules['cpp_head'] > 0
    assert counts['total'] == sum(modules.values())


def test_tool_json_and_cfg_options(repo_root, capsys):
    tool = _load_tool(repo_root)
    config = osp.join(repo_root, 'configs/pretrain/k700_mid_part.py')
    tool.main([config, '--json', '--cfg-options',
               'model.neck.share_layers=False'])
    counts = json.loads(capsys.readouterr().out)
    assert counts['transformer_layers'] == 23_063_040
    tool.main([config])
    text = capsys.readouterr().out
    assert 'transformer_layers' in text and '3,843,840' in text
    assert 'neck.embeddings' in text and 'total' in text


def test_fusion_ablation_configs_build(repo_root):
    early = count_parameters_from_config(
        osp.join(repo_root, 'configs/pretrain/ablations/k700_early_part.py'))
    late = count_parameters_from_config(
        osp.join(repo_root, 'configs/pretrain/ablations/k700_late_part.py'))
    # One factorisation group (multimodal only) vs. two (visual, audio).
    assert early['transformer_layers'] == 1_877_760
    assert late['transformer_layers'] == 2_860_800
    assert list(early['neck']) == ['embeddings', 'transformers',
                                   'transformers.shared']


def test_count_parameters_counts_shared_weights_once():
    from torch import nn
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, shared, nn.Linear(4, 2))
    counts = count_parameters(model)
    assert counts['total'] == 20 + 10
    assert counts['transformer_layers'] == 0 and counts['neck'] == {}
    assert 'total' in format_counts(counts)
