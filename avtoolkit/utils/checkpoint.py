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
import os
import pickle
import tempfile
import types
from typing import Any, List

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader


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
        filepath = os.fspath(filepath)
        folder = os.path.dirname(filepath) or '.'
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f'.{os.path.basename(filepath)}.', suffix='.tmp',
            dir=folder)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

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
