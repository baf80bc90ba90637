"""Checkpoints load with weights_only=True; foreign pickles are refused."""
import os

import pytest
import torch

from avtoolkit.checkpoint import UnsafeCheckpointError, load_checkpoint_file


class Payload:
    """An arbitrary object; unpickling it would run its __reduce__."""

    def __reduce__(self):
        return (os.system, ('echo unsafe',))


def test_plain_state_dict_loads(tmp_path):
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, path)
    assert torch.equal(load_checkpoint_file(str(path))['state_dict']['w'],
                       torch.ones(2))


def test_arbitrary_pickle_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'extra': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(str(path))
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
        load_checkpoint_file(str(path))


def test_mmengine_loader_refuses_through_runner_path(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'evil2.pth'
    torch.save({'state_dict': {}, 'extra': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')
