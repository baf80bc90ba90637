"""Checkpoint files: the one reader and the atomic writers.

:func:`read_checkpoint` is the only place where avtoolkit unpickles a
checkpoint: torch's loader is called in one line, here.  It loads with
``weights_only``: tensors, plain containers, the state mmengine 0.10.7 writes
(its ``MessageHub`` keeps ``HistoryBuffer`` objects with numpy arrays and
scalars, allowlisted exactly by :func:`allow_mmengine_checkpoint_globals`)
and, read as ``OrderedDict``, pickled ``CfgNode`` configs (PySlowFast).
Anything else is refused with :class:`UnsafeCheckpointError`; a missing,
empty, truncated or foreign file raises an error naming it.
:func:`allow_mmengine_checkpoint_globals` also routes mmengine's local
checkpoint loading (``resume``, ``load_from``, ``init_cfg`` of type
``Pretrained``) through this reader.

Writing: :func:`save_checkpoint` (the converters) and, through
:func:`use_atomic_local_writes`, every local file mmengine saves go through
:mod:`avtoolkit.utils.atomic`.  Weight selection and loading into modules:
:mod:`avtoolkit.checkpoint.loading`.
"""
import collections
import hashlib
import os
import os.path as osp
import pickle
import pickletools
import re
import types
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from avtoolkit.utils.atomic import atomic_write, write_bytes_atomic


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message names the
    file and says what to do."""


class NotACheckpointError(CheckpointError):
    """The file is a folder, empty, truncated, or not written by
    ``torch.save``."""


class UnsafeCheckpointError(CheckpointError):
    """The file pickles objects outside the allowlist."""


class ConversionError(CheckpointError):
    """A checkpoint cannot be converted as asked (the message says why)."""


def _numpy_globals() -> List[Any]:
    """numpy objects that appear when numpy arrays and scalars are pickled."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    found = [_reconstruct, scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes by their class
    # (``numpy.dtypes.Float64DType``).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('Float16DType', 'Float32DType', 'Float64DType',
                     'Int8DType', 'Int16DType', 'Int32DType', 'Int64DType',
                     'UInt8DType', 'UInt16DType', 'UInt32DType',
                     'UInt64DType', 'BoolDType'):
            cls = getattr(dtypes, name, None)
            if cls is not None:
                found.append(cls)
    return found


def _history_buffer_method(owner: Any, name: str) -> Any:
    """A ``getattr`` that resolves only methods defined on ``HistoryBuffer``.

    ``HistoryBuffer.__getstate__`` stores its statistics methods
    (``HistoryBuffer.min``, ``.max``, ``.mean``, ``.current``), which pickle
    writes as ``getattr(HistoryBuffer, 'min')``.  Allowlisting the real
    ``getattr`` would let a crafted file reach any attribute of any allowed
    object (and from there ``os.system``), so this narrow resolver is
    registered under the name ``builtins.getattr`` instead.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) \
            and not name.startswith('_'):
        attr = HistoryBuffer.__dict__.get(name)
        if isinstance(attr, types.FunctionType):
            return attr
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')


def mmengine_checkpoint_globals() -> List[Any]:
    """The non-tensor globals mmengine 0.10.7 writes into a training
    checkpoint.

    ``HistoryBuffer`` (the message hub's logged scalars), its statistics
    methods through :func:`_history_buffer_method`, and what pickling numpy
    arrays and scalars needs.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')
            ] + _numpy_globals()


_ALLOWED = False


def allow_mmengine_checkpoint_globals() -> None:
    """Allowlist mmengine's checkpoint globals for ``weights_only`` loading
    and route mmengine's local checkpoint loading through
    :func:`read_checkpoint`.  Idempotent."""
    global _ALLOWED
    if _ALLOWED:
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        _load_from_local)
    _ALLOWED = True


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader of local files (``resume``, ``load_from``,
    ``init_cfg=dict(type='Pretrained')``)."""
    return read_checkpoint(filename, map_location=map_location)


def check_checkpoint_file(path: str) -> str:
    """``path`` with ``~`` expanded, if it names a file; otherwise a
    ``FileNotFoundError`` (or :class:`NotACheckpointError` for a folder)
    that names it."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f'a checkpoint must be given as a file path, got '
                         f'{path!r}')
    path = osp.expanduser(os.fspath(path))
    if osp.isdir(path):
        raise NotACheckpointError(f'checkpoint "{path}" is a folder, not a '
                                  'checkpoint file')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint "{path}" not found')
    return path


# Signs of a file that is not (or no longer) what torch.save wrote.
_CORRUPT = re.compile(
    r'Unsupported operand|String is too long|pickle data was truncated|'
    r'stack underflow|invalid load key|Memo value not found|'
    r'PytorchStreamReader|inline_container|zip archive|magic number|'
    r'unsupported persistent id')
_GLOBAL_IN_ERROR = re.compile(
    r'GLOBAL ([\w.]+) (?:was not an allowed global|whose module)')
_CONFIG_CLASS = 'CfgNode'


def _not_a_checkpoint(path: str, why: str) -> NotACheckpointError:
    return NotACheckpointError(
        f'"{path}" is not a readable checkpoint ({why}); expected a file '
        'written by torch.save (an mmengine/avtoolkit checkpoint or a state '
        'dict). It may be truncated (an interrupted download, copy or save) '
        'or another kind of file.')


def _unpickle(path: str, map_location: Any, trust: bool) -> Any:
    """The one call of torch's loader, with unreadable files reported as
    :class:`NotACheckpointError`."""
    if osp.getsize(path) == 0:
        raise _not_a_checkpoint(path, 'empty file')
    try:
        return torch.load(path, map_location=map_location,
                          weights_only=not trust)
    except (EOFError, UnicodeDecodeError) as err:
        raise _not_a_checkpoint(path, 'the data ends early or is not a '
                                'pickle') from err
    except KeyError as err:  # a memo reference to nothing: not a pickle
        raise _not_a_checkpoint(path, 'unreadable pickle data') from err
    except (pickle.UnpicklingError, RuntimeError) as err:
        found = _CORRUPT.search(str(err))
        if found is not None:
            raise _not_a_checkpoint(
                path, f'unreadable data: {found.group(0)}') from err
        if isinstance(err, pickle.UnpicklingError) and \
                not _legacy_pickles_complete(path):
            raise _not_a_checkpoint(path, 'the data ends early') from err
        raise


def _legacy_pickles_complete(path: str) -> bool:
    """Whether a file in torch's legacy (non-zip) format holds its five
    leading pickles whole (scanned without unpickling); a file cut in the
    middle of one can name a global that is half a name.  True for zip
    files (their truncation is caught by the zip reader)."""
    if zipfile.is_zipfile(path):
        return True
    try:
        with open(path, 'rb') as f:
            for _ in range(5):  # magic, protocol, sys info, object, keys
                for _ in pickletools.genops(f):
                    pass
    except Exception:
        return False
    return True


def _unsafe_globals(path: str, error: BaseException) -> List[str]:
    """The globals of ``path`` outside the allowlist (read off the error
    for a legacy, non-zip file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        text = str(error) + str(getattr(error, '__cause__', ''))
        return _GLOBAL_IN_ERROR.findall(text)


def read_checkpoint(path: str, map_location: Any = 'cpu',
                    trust: bool = False,
                    trust_option: Optional[str] = None) -> Any:
    """Load a checkpoint file; the only reader of checkpoints in avtoolkit.

    Args:
        path: the file (``~`` expanded).
        map_location: as torch's loader (default: the CPU).
        trust: unpickle without restrictions (only for files from a trusted
            source; the converters' ``--trust``).
        trust_option: the option that sets ``trust`` where the caller has
            one (e.g. ``'--trust'``), named in the refusal message.

    Without ``trust`` only tensors, plain containers, mmengine's logged
    state and pickled ``CfgNode`` configs (read as ``OrderedDict``) are
    unpickled.

    Raises:
        FileNotFoundError: no such file.
        NotACheckpointError: a folder, an empty, truncated or foreign file.
        UnsafeCheckpointError: the file pickles other objects.
        ConversionError: with ``trust``, a pickled class cannot be imported.
    """
    path = check_checkpoint_file(path)
    allow_mmengine_checkpoint_globals()
    if trust:
        try:
            return _unpickle(path, map_location, trust=True)
        except (ModuleNotFoundError, AttributeError) as err:
            raise ConversionError(
                f'"{path}" pickles an object whose class cannot be imported '
                f'here ({err}); install the package that defines it (yacs / '
                'fvcore for PySlowFast configs) or load without --trust, '
                'which reads configs as plain dicts') from err
    substitutes: List[Tuple[Any, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(substitutes):
                return _unpickle(path, map_location, trust=False)
        except pickle.UnpicklingError as err:
            done = {name for _, name in substitutes}
            names = [n for n in _unsafe_globals(path, err) if n not in done]
            configs = [n for n in names
                       if n.rsplit('.', 1)[-1] == _CONFIG_CLASS]
            others = [n for n in names if n not in configs]
            if others or not configs:
                raise _unsafe(path, others, err, trust_option) from err
            substitutes += [(collections.OrderedDict, n) for n in configs]


def _reason(error: BaseException) -> str:
    """The line of torch's refusal that says what was refused."""
    boilerplate = ('Weights only load failed', 'Check the documentation',
                   'Please file an issue', '(1)', '(2)')
    lines = [line.strip() for line in str(error).splitlines()]
    lines = [line for line in lines
             if line and not line.startswith(boilerplate)]
    return lines[-1] if lines else type(error).__name__


def _unsafe(path: str, names: List[str], error: BaseException,
            trust_option: Optional[str]) -> UnsafeCheckpointError:
    shown = ', '.join(names) if names else _reason(error)
    if trust_option:
        remedy = (f'If you trust the file, pass {trust_option} (unrestricted '
                  'unpickling).')
    else:
        remedy = ('If you trust the file, load it yourself with '
                  'torch.load and weights_only=False, keep only its '
                  '"state_dict" and save that, or allowlist the class with '
                  'torch.serialization.add_safe_globals([...]) before '
                  'loading.')
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint "{path}": it pickles objects that are '
        'neither tensors nor known mmengine state or configs '
        f'({shown}). Loading them could run arbitrary code. ' + remedy)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes
    (:mod:`avtoolkit.utils.atomic`): a crash or a full disk during a
    checkpoint save never leaves a truncated file under the checkpoint's
    name."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomic(os.fspath(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def use_atomic_local_writes() -> None:
    """Make mmengine write every local file (checkpoints included)
    atomically."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # get_file_backend caches backend instances; drop stale local ones.
    from mmengine.fileio import io as fileio_io
    for key, backend in list(fileio_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del fileio_io.backend_instances[key]


def plain_config(value: Any) -> Any:
    """Config values as builtins only (safe for ``weights_only`` loading)."""
    if isinstance(value, (ConfigDict, Mapping)):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_config(v) for v in value)
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
    payload = dict(
        meta=plain_config(meta),
        state_dict={
            k: v.detach().cpu().contiguous().clone()
            for k, v in state_dict.items()
        })
    with atomic_write(path, 'wb') as f:
        torch.save(payload, f)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file (recorded by the converters)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
