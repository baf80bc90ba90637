"""Config text read from a checkpoint is data, never code (break 4)."""
import os.path as osp

import pytest
import torch

from tool_runs import REPO, run_tool



def _checkpoint_with_config(path, cfg_text):
    """A checkpoint like the Runner writes: a visual CNN's weights and the
    config as text in ``meta['cfg']`` (strings and tensors only, so the
    ``weights_only`` reader accepts it)."""
    state = {'visual_backbone.cnn.conv.weight': torch.randn(4, 3, 1, 1, 1)}
    torch.save(dict(meta=dict(cfg=cfg_text, iter=1), state_dict=state), path)


def test_converter_does_not_run_code_stored_in_a_checkpoint(tmp_path):
    """``tools/convert/to_mmaction.py`` without ``--config`` used to parse
    ``meta['cfg']`` with ``Config.fromstring``, which executes it."""
    marker = tmp_path / 'code_ran'
    payload = (f"__import__('pathlib').Path({str(marker)!r}).touch()\n"
               "model = dict(type='AVBERTEncoder')\n")
    ckpt = tmp_path / 'crafted.pth'
    _checkpoint_with_config(ckpt, payload)
    result = run_tool(osp.join('convert', 'to_mmaction.py'),
                      [ckpt, tmp_path / 'out.pth'], cwd=tmp_path)
    assert not marker.exists(), 'the checkpoint ran code'
    assert result.returncode == 1, result.stderr[-2000:]
    message = result.stdout + result.stderr
    assert 'not plain config data' in message and '--config' in message
    assert not (tmp_path / 'out.pth').exists()


def test_dumped_configs_read_back_as_the_same_data():
    from mmengine.config import Config

    from avtoolkit.checkpoint.config_text import parse_config_text
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain',
                                   'demo_mid_part.py'))
    parsed = parse_config_text(cfg.pretty_text)
    assert Config(parsed).to_dict() == cfg.to_dict()


@pytest.mark.parametrize('text', [
    "import os\nx = 1",
    "x = __import__('os').system('true')",
    "x = dict(**other)",
    "x = [i for i in range(3)]",
    "x = open('f').read()",
    "x = (lambda: 1)()",
    "x = y",
    "x = 1\nprint(x)",
    "x = 'a'.join(['b'])",
    "x = 1 +",
])
def test_anything_but_plain_data_is_refused(text):
    from avtoolkit.checkpoint.config_text import (ConfigTextError,
                                                  parse_config_text)
    with pytest.raises(ConfigTextError, match='line|not valid'):
        parse_config_text(text, 'test text')


def test_plain_values():
    from avtoolkit.checkpoint.config_text import parse_config_text
    parsed = parse_config_text(
        "a = dict(b=-1, c=[1.5, 'x', None, True], d=(1, ), e={'k': {2}})\n"
        "f = +3")
    assert parsed == dict(a=dict(b=-1, c=[1.5, 'x', None, True], d=(1, ),
                                 e={'k': {2}}), f=3)
