"""What the command-line tools share: a user error ends the program with a
one-line message instead of a traceback."""
import sys
from typing import Callable, Tuple, Type

__all__ = ['exit_status']


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
