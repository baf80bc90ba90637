"""Reading the text files that name the data: list files, annotation CSVs,
class lists.

Every reader of a list or CSV goes through these functions, so that a
broken file gives one kind of message: the file, the line, what was
expected and what was found.

* Encoding: UTF-8 (a byte-order mark is accepted).  Other bytes raise
  :class:`AnnotationError` with the byte offset and line of the first one.
* CSV columns: :func:`read_csv_rows` checks the header for the columns a
  reader needs (the error names the missing ones and lists the columns
  found) and every row for a value in each of them (the error names the
  line and the column).
* Labels and class names are compared after stripping the white space
  around them (:func:`clean_label`), in every reader and class list alike.
"""
import csv
import difflib
import io
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.fileio import get_local_path

ENCODING = 'utf-8'


class AnnotationError(ValueError):
    """A list, CSV or class file that cannot be read as the reader needs.
    The message names the file (and the line where it applies)."""


def read_text(path: str, what: str = 'annotation file') -> str:
    """The whole text of ``path``, decoded as UTF-8 (BOM allowed).

    Raises:
        FileNotFoundError: naming ``what`` and the path.
        AnnotationError: the file is not UTF-8 (byte offset, line, the
            offending byte and how to convert it).
    """
    try:
        with get_local_path(path) as local, open(local, 'rb') as f:
            data = f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{what} "{path}" not found') from e
    except IsADirectoryError as e:
        raise AnnotationError(f'{what} "{path}" is a directory, not a '
                              'file') from e
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        bad = data[e.start:e.end]
        raise AnnotationError(
            f'{what} "{path}" is not {ENCODING.upper()} text: byte '
            f'0x{bad.hex()} at offset {e.start} (line {line}) cannot be '
            f'decoded ({e.reason}). Save the file as {ENCODING.upper()}, '
            f'e.g. iconv -f latin1 -t utf-8 "{path}" > fixed.txt') from None


def read_lines(path: str, what: str = 'annotation file') -> List[str]:
    """The lines of ``path`` (UTF-8), without line ends."""
    return read_text(path, what).splitlines()


def clean_label(label: Optional[str]) -> str:
    """A label or class name as the readers compare it: white space around
    it removed (a trailing space in a CSV or class list is not a
    difference)."""
    return '' if label is None else str(label).strip()


def read_csv_rows(path: str, required: Sequence[str],
                  what: str = 'CSV file', optional: Sequence[str] = ()
                  ) -> List[Tuple[int, Dict[str, Optional[str]]]]:
    """``(line number, row)`` of every data row of a CSV with a header.

    Header names are compared without surrounding white space.  Every
    ``required`` column must be in the header and have a value in every
    row; ``optional`` columns are only documented for the messages.

    Raises:
        AnnotationError: naming the file, the missing column(s) and the
            columns found; or the line whose row lacks a value.
    """
    text = read_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=''))
    try:
        header = next(reader)
    except StopIteration:
        raise AnnotationError(f'{what} "{path}" is empty; expected a header '
                              f'line with the columns {list(required)}'
                              ) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        wanted = list(required) + [c for c in optional if c not in required]
        raise AnnotationError(
            f'{what} "{path}" has no column {", ".join(map(repr, missing))}'
            f' (line 1 is the header; columns found: {header}; the reader '
            f'needs {list(required)}' +
            (f', optionally {list(optional)}' if optional else '') +
            f'; expected e.g. "{",".join(wanted)}")')
    rows = []
    for fields in reader:
        line = reader.line_num  # the (last) physical line of this row
        if not any(f.strip() for f in fields):
            continue  # blank line
        row = {name: (fields[i] if i < len(fields) else None)
               for i, name in enumerate(header)}
        empty = [c for c in required if row.get(c) is None
                 or not str(row[c]).strip()]
        if empty:
            raise AnnotationError(
                f'{what} "{path}", line {line}: no value in column '
                f'{", ".join(map(repr, empty))} (the row has {len(fields)} '
                f'fields, the header {len(header)}: {header})')
        rows.append((line, row))
    return rows


def nearest(name: str, known: Iterable[str], n: int = 3) -> List[str]:
    """Up to ``n`` known names closest to ``name`` (difflib), the most
    similar first; names differing only in case come first."""
    known = list(known)
    folded = [k for k in known if k.casefold() == name.casefold()]
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    out = folded + [c for c in close if c not in folded]
    return out[:n]
