"""Loading mmengine checkpoints safely under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default: unpickling is
restricted to tensors, containers and an allowlist of globals.  mmengine 0.10.7
stores, besides tensors, its ``MessageHub`` state (``HistoryBuffer`` objects
holding numpy arrays and numpy scalars) in every checkpoint it writes, so a
plain ``resume=True`` fails with ``UnpicklingError``.

Rather than switching ``weights_only`` off (which lets any checkpoint a user
downloads run arbitrary code), :func:`allow_mmengine_checkpoint_globals` adds
exactly the globals mmengine writes to torch's allowlist.  Anything else in a
file is still refused; :func:`load_checkpoint_file` turns torch's refusal into a
message that names the file, the offending global and what to do.
"""
import collections
import hashlib
import os
import os.path as osp
import pickle
import re
import tempfile
import types
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import torch
from torch import Tensor
from mmengine.config import ConfigDict
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader

from avtoolkit.utils.atomic import write_bytes_atomic


def _numpy_globals() -> List[Any]:
    """numpy objects that appear when numpy arrays and scalars are pickled."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    found = [_reconstruct, scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes by their class (``numpy.dtypes.Float64DType``).
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
    """The non-tensor globals mmengine 0.10.7 writes into a training checkpoint.

    ``HistoryBuffer`` (the message hub's logged scalars), its statistics
    methods through :func:`_history_buffer_method`, and what pickling numpy
    arrays and scalars needs.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')
            ] + _numpy_globals()


_ALLOWED = False


def allow_mmengine_checkpoint_globals() -> None:
    """Allowlist mmengine's checkpoint globals for ``torch.load(weights_only=True)``
    and route mmengine's local checkpoint loading through
    :func:`load_checkpoint_file`.  Idempotent."""
    global _ALLOWED
    if _ALLOWED:
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        _load_from_local)
    _ALLOWED = True


class UnsafeCheckpointError(RuntimeError):
    """Raised for a checkpoint that holds objects outside the allowlist."""


def load_checkpoint_file(filename: str, map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear refusal message."""
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
                filename)
        except Exception:  # not a zip checkpoint: fall back to torch's text
            unsafe = []
        names = ', '.join(unsafe) if unsafe else str(err).splitlines()[0]
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint "{filename}": it contains pickled '
            f'objects that are not tensors or known mmengine state ({names}). '
            'Loading them could run arbitrary code. If you trust the file, '
            'load it yourself with torch.load(..., weights_only=False), keep '
            'only its "state_dict" and save that, or allowlist the class with '
            'torch.serialization.add_safe_globals([...]) before loading.'
        ) from err


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    import os.path as osp
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_checkpoint_file(filename, map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes.

    ``put``/``put_text`` write to a temporary file in the target folder, flush
    it to disk and ``os.replace`` it onto the target name, so a crash or a full
    disk during a checkpoint save never leaves a truncated file under the
    checkpoint's name: readers see the old file or the complete new one.
    """

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomic(os.fspath(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def use_atomic_local_writes() -> None:
    """Make mmengine write every local file (checkpoints included) atomically."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # get_file_backend caches backend instances; drop stale local ones.
    from mmengine.fileio import io as fileio_io
    for key, backend in list(fileio_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del fileio_io.backend_instances[key]


STATE_DICT_ENTRIES = ('state_dict', 'model_state', 'model_state_dict')
_CONFIG_CLASS = 'CfgNode'
_GLOBAL_IN_ERROR = re.compile(r'GLOBAL ([\w.]+) was not an allowed global')


class ConversionError(ValueError):
    """A checkpoint cannot be converted as asked (the message says why)."""


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
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = dict(
        meta=plain_config(meta),
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


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
