"""What the command-line tools share: a user error ends the program with a
one-line message instead of a traceback."""
import sys
from typing import Callable, Tuple, Type

__all__ = ['check_new_output', 'exit_status']


def exit_status(run: Callable[[], object],
                errors: Tuple[Type[BaseException], ...],
                status: int = 1) -> int:
    """Call ``run()``; 0 if it returns, ``status`` after printing
    ``error: <message>`` to stderr if it raises one of ``errors`` (anything
    else propagates with its traceback)."""
    try:
        run()
    except errors as err:
        print(f'error: {err}', file=sys.stderr)
        return status
    return 0


def check_new_output(path: str, overwrite: bool = False,
                     option: str = '--overwrite') -> str:
    """``path`` if a tool may write it: it does not exist yet, or the user
    asked to replace it (``overwrite``).

    Tools call this before their work starts, so a refused output costs
    nothing.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false; the
            message names the file and ``option``.
        IsADirectoryError: ``path`` is a folder.
    """
    import os.path as osp
    if osp.isdir(path):
        raise IsADirectoryError(f'output "{path}" is a folder; give a file '
                                'name')
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'output "{path}" already exists; pass '
                              f'{option} to replace it, or choose another '
                              'path')
    return path
