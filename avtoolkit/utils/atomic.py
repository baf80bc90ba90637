"""Atomic file writes: the one way the project writes a file.

A file is written under a temporary name in its target folder
(``.NAME.<random>.tmp``), flushed to disk and renamed onto its name, so a
reader (or a run resumed after a crash) sees either the old file or the
complete new one, never a truncated one.  On an error the temporary file is
removed and the old file is left as it was.  New files get the permissions
of a plain ``open`` (``0o666`` less the umask).
"""
import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator

__all__ = [
    'atomic_path', 'atomic_write', 'write_bytes_atomic', 'write_json_atomic',
    'write_text_atomic'
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = True) -> Iterator[str]:
    """A temporary path to write ``path`` through, for writers that take a
    file name (``np.savez``, PyAV, tar writers).

    The file at the yielded path is renamed onto ``path`` when the block
    ends without an exception, and removed otherwise.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.',
                               suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        if fsync:
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', encoding: str = None,
                 newline: str = None, fsync: bool = True) -> Iterator[IO]:
    """``open(path, mode)`` that replaces ``path`` only once the block ends
    without an exception (``mode`` ``'w'`` or ``'wb'``)."""
    if mode not in ('w', 'wb'):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    if mode == 'w' and encoding is None:
        encoding = 'utf-8'
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, 'wb') as f:
        f.write(data)


def write_text_atomic(path: str, text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, 'w', encoding=encoding) as f:
        f.write(text)


def write_json_atomic(path: str, obj: Any, **kwargs) -> None:
    """``json.dump(obj)`` to ``path`` atomically (``kwargs`` go to
    ``json.dumps``, e.g. ``indent``)."""
    write_text_atomic(path, json.dumps(obj, **kwargs))
