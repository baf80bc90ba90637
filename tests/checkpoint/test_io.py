"""Checkpoints load with weights_only=True; foreign pickles are refused."""
import os

import pytest
import torch

from avtoolkit.checkpoint import UnsafeCheckpointError, read_checkpoint


class Payload:
    """An arbitrary object; unpickling it would run its __reduce__."""

    def __reduce__(self):
        return (os.system, ('echo unsafe',))


def test_plain_state_dict_loads(tmp_path):
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, path)
    assert torch.equal(read_checkpoint(str(path))['state_dict']['w'],
                       torch.ones(2))


@pytest.mark.parametrize('zip_format', [True, False])
def test_arbitrary_pickle_is_refused_with_a_clear_message(tmp_path,
                                                          zip_format):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'extra': Payload()}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(str(path))
    message = str(info.value)
    assert 'evil.pth' in message and 'posix.system' in message
    assert 'arbitrary code' in message


def test_getattr_is_only_resolved_for_history_buffer(tmp_path):
    """The allowlisted ``getattr`` stand-in must not reach other attributes."""
    import pickle

    class ReachOs:
        def __reduce__(self):  # getattr(torch.nn.Module, '__init__')
            return (getattr, (torch.nn.Module, '__init__'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': ReachOs()}, path)
    with pytest.raises((UnsafeCheckpointError, pickle.UnpicklingError)):
        read_checkpoint(str(path))


def test_mmengine_loader_refuses_through_runner_path(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'evil2.pth'
    torch.save({'state_dict': {}, 'extra': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')


# ------------------------------------------------ files that are no checkpoint
def _unreadable(tmp_path, kind):
    """A file (or folder) of ``kind`` that torch's loader cannot read."""
    path = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'random':
        path.write_bytes(bytes(range(7, 256)) * 3)
    elif kind == 'text':
        path.write_text('hello world\n')
    elif kind == 'numpy':
        import numpy as np
        with open(path, 'wb') as f:
            np.save(f, np.ones(3))
    elif kind in ('truncated_zip', 'truncated_legacy'):
        torch.save({'state_dict': {'w': torch.ones(64)}}, path,
                   _use_new_zipfile_serialization=kind == 'truncated_zip')
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'folder':
        path.mkdir()
    return path


UNREADABLE = ['empty', 'random', 'text', 'numpy', 'truncated_zip',
              'truncated_legacy', 'folder']


@pytest.mark.parametrize('kind', UNREADABLE)
def test_unreadable_files_raise_an_error_naming_them(tmp_path, kind):
    """Not a bare EOFError / KeyError / zip error, and no claim of unsafe
    objects in a file that is merely broken."""
    from avtoolkit.checkpoint import NotACheckpointError
    path = _unreadable(tmp_path, kind)
    with pytest.raises(NotACheckpointError) as info:
        read_checkpoint(str(path))
    message = str(info.value)
    assert f'"{path}"' in message
    assert 'not a readable checkpoint' in message or 'folder' in message
    assert not isinstance(info.value, UnsafeCheckpointError)


@pytest.mark.parametrize('kind', ['empty', 'random', 'truncated_zip'])
def test_mmengine_loader_reports_unreadable_files(tmp_path, kind):
    """resume / load_from / init_cfg Pretrained read through the same
    reader."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from avtoolkit.checkpoint import NotACheckpointError
    path = _unreadable(tmp_path, kind)
    with pytest.raises(NotACheckpointError, match=f'{kind}.pth'):
        _load_checkpoint(str(path), map_location='cpu')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        _load_checkpoint(str(tmp_path / 'absent.pth'), map_location='cpu')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        read_checkpoint(str(tmp_path / 'absent.pth'))
    with pytest.raises(ValueError, match='file path'):
        read_checkpoint('')


def test_the_remedy_names_the_trust_option_only_where_there_is_one(
        tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'extra': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(str(path))
    assert '--trust' not in str(info.value)
    assert 'weights_only=False' in str(info.value)
    with pytest.raises(UnsafeCheckpointError, match='posix.system.*--trust'):
        read_checkpoint(str(path), trust_option='--trust')


def test_pickled_configs_are_read_as_dicts(tmp_path, monkeypatch):
    """A ``CfgNode`` (PySlowFast's config) is read as an ``OrderedDict`` by
    every loading path, mmengine's included; other classes are refused."""
    import collections
    import sys
    import types

    from mmengine.runner.checkpoint import _load_checkpoint
    module = types.ModuleType('fake_yacs_config')

    class CfgNode(dict):
        pass

    CfgNode.__module__ = module.__name__
    CfgNode.__qualname__ = 'CfgNode'
    module.CfgNode = CfgNode
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / 'official.pyth'
    torch.save({'model_state': {'w': torch.ones(2)},
                'cfg': CfgNode(TRAIN=CfgNode(BATCH_SIZE=8))}, path)
    for loaded in (read_checkpoint(str(path)),
                   _load_checkpoint(str(path), map_location='cpu')):
        assert type(loaded['cfg']) is collections.OrderedDict
        assert loaded['cfg']['TRAIN']['BATCH_SIZE'] == 8
        assert torch.equal(loaded['model_state']['w'], torch.ones(2))


def test_state_dict_entries_and_wrapper_prefix(tmp_path):
    from avtoolkit.checkpoint import (CheckpointError, extract_state_dict,
                                      read_state_dict)
    w = torch.ones(2)
    for entry in ('state_dict', 'model_state', 'model_state_dict'):
        state, found = extract_state_dict({entry: {'module.a.w': w},
                                           'meta': {}})
        assert found == entry and list(state) == ['a.w']
    state, found = extract_state_dict({'a.w': w, 'b.w': w})
    assert found == '' and list(state) == ['a.w', 'b.w']
    # only a prefix on every key is a wrapper's
    state, _ = extract_state_dict({'module.a.w': w, 'b.w': w})
    assert sorted(state) == ['b.w', 'module.a.w']
    path = tmp_path / 'meta_only.pth'
    torch.save({'meta': {'iter': 3}, 'message_hub': {}}, path)
    with pytest.raises(CheckpointError, match='meta_only.pth.*none of the '
                       'entries'):
        read_state_dict(str(path))
    torch.save({'state_dict': {'step': 3}}, path)
    with pytest.raises(CheckpointError, match='"state_dict" entry of '
                       'checkpoint ".*meta_only.pth" holds no tensors'):
        read_state_dict(str(path))
    torch.save([w], path)
    with pytest.raises(CheckpointError, match='meta_only.pth.*list'):
        read_state_dict(str(path))
