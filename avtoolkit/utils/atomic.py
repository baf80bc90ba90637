"""Atomic file writes: the one way the project writes a file.

A file is written under a temporary name in its target folder
(``.NAME.<random>.tmp``), flushed to disk and renamed onto its name, so a
reader (or a run resumed after a crash) sees either the old file or the
complete new one, never a truncated one.  On an error the temporary file is
removed and the old file is left as it was.  New files get the permissions
of a plain ``open`` (``0o666`` less the umask).  A process killed during a
write leaves its temporary file behind: :func:`temp_file_pattern` and
:func:`remove_temp_files` let a writer that owns a folder clear them.
"""
import contextlib
import json
import os
import re
import tempfile
from typing import IO, Any, Iterator, List, Optional

__all__ = [
    'atomic_path', 'atomic_write', 'remove_temp_files', 'temp_file_pattern',
    'write_bytes_atomic', 'write_json_atomic', 'write_text_atomic'
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


def write_text_atomic(path: str, text: str, encoding: str = 'utf-8',
                      newline: Optional[str] = None) -> None:
    """Write ``text`` to ``path`` atomically (``newline`` as ``open``'s:
    ``''`` writes line ends exactly as given)."""
    with atomic_write(path, 'w', encoding=encoding, newline=newline) as f:
        f.write(text)


def write_json_atomic(path: str, obj: Any, **kwargs) -> None:
    """``json.dump(obj)`` to ``path`` atomically (``kwargs`` go to
    ``json.dumps``, e.g. ``indent``)."""
    write_text_atomic(path, json.dumps(obj, **kwargs))


def temp_file_pattern(name: str) -> str:
    """A regular expression (text) matching the temporary file of a write
    to a target whose base name matches the expression ``name``:
    ``.NAME.<random>.tmp``."""
    return rf'\.(?:{name})\.[A-Za-z0-9_]+\.tmp'


def remove_temp_files(folder: str, name: str) -> List[str]:
    """Delete the temporary files that interrupted writes to targets whose
    base names match the expression ``name`` left in ``folder`` (only for a
    folder no other process is writing to).  Returns the names removed."""
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(temp_file_pattern(name) + '$')
    removed = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if pattern.match(entry) and os.path.isfile(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(entry)
    return removed
