"""Config text stored in a checkpoint, read as data.

mmengine's Runner stores the run's config in every checkpoint as Python
source (``checkpoint['meta']['cfg']``, the config's ``pretty_text``).
Reading it back with ``Config.fromstring`` would *execute* that text: a
checkpoint whose config starts with ``__import__('os').system(...)`` would
run the command, although the checkpoint itself passes the ``weights_only``
loader (it holds only strings and tensors).

:func:`parse_config_text` reads the same text without running it: it parses
the source into a syntax tree and accepts only what a dumped config
contains: top-level assignments ``name = value`` whose values are
literals (numbers, strings, ``True``/``False``/``None``), lists, tuples,
sets, dict displays with literal keys, ``dict(key=value, ...)`` calls and
signed numbers.  Anything else (another call, a name, an attribute, an
import, an expression statement) is refused with :class:`ConfigTextError`,
which names the line.  For comparing configs (a resumed run against its
checkpoint), ``keep_unknown=True`` keeps such an expression as an
:class:`Opaque` value holding its source text instead, and skips other
statements: still nothing is run.
"""
import ast
from typing import Any, Dict

__all__ = ['ConfigTextError', 'Opaque', 'parse_config_text']


class ConfigTextError(ValueError):
    """Config text that is not plain data (or not Python at all)."""


class Opaque:
    """An expression of a config text that is not plain data, kept as its
    source text (never evaluated); equal to the same text."""

    def __init__(self, source: str):
        self.source = source

    def __eq__(self, other) -> bool:
        return isinstance(other, Opaque) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return self.source


def _refuse(node: ast.AST, source: str, what: str) -> ConfigTextError:
    line = getattr(node, 'lineno', '?')
    return ConfigTextError(
        f'{source}, line {line}: {what} is not plain config data; config '
        'text from a file is read as data and never executed')


def _value(node: ast.AST, source: str, keep: bool = False) -> Any:
    try:
        return _plain_value(node, source, keep)
    except ConfigTextError:
        if keep:
            return Opaque(ast.unparse(node))
        raise


def _plain_value(node: ast.AST, source: str, keep: bool) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(item, source, keep) for item in node.elts]
        if isinstance(node, ast.List):
            return items
        return tuple(items) if isinstance(node, ast.Tuple) else set(items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):  # {**other}
            raise _refuse(node, source, 'a "**" expansion')
        return {_value(k, source, keep): _value(v, source, keep)
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == 'dict'):
            raise _refuse(node, source,
                          f'a call of {ast.unparse(node.func)!r}')
        if node.args or any(k.arg is None for k in node.keywords):
            raise _refuse(node, source,
                          'dict() with positional or "**" arguments')
        return {k.arg: _value(k.value, source, keep)
                for k in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(
            node.op, (ast.USub, ast.UAdd)) and isinstance(
                node.operand, ast.Constant) and isinstance(
                    node.operand.value, (int, float, complex)) and \
            not isinstance(node.operand.value, bool):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    raise _refuse(node, source, f'the expression {ast.unparse(node)!r}')


def parse_config_text(text: str, source: str = 'config text',
                      keep_unknown: bool = False) -> Dict[str, Any]:
    """The ``name = value`` assignments of ``text`` as a dict, without
    executing anything.

    Args:
        text: config source as mmengine dumps it.
        source: where the text came from, for error messages (e.g.
            ``'the config stored in "iter_4.pth"'``).
        keep_unknown: keep expressions that are not plain data as
            :class:`Opaque` values and skip statements that are not
            assignments, instead of refusing them.

    Raises:
        ConfigTextError: the text is not Python, or holds anything but
            top-level assignments of plain data.
    """
    if not isinstance(text, str):
        raise ConfigTextError(f'{source} is a {type(text).__name__}, not '
                              'config text')
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ConfigTextError(f'{source} is not valid config text '
                              f'(line {err.lineno}: {err.msg})') from err
    result: Dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(
                statement.target, ast.Name) and statement.value is not None:
            target, value = statement.target, statement.value
        elif (isinstance(statement, ast.Assign)
              and len(statement.targets) == 1
              and isinstance(statement.targets[0], ast.Name)):
            target, value = statement.targets[0], statement.value
        elif keep_unknown:
            continue
        else:
            raise _refuse(statement, source,
                          f'the statement {ast.unparse(statement)[:80]!r}')
        result[target.id] = _value(value, source, keep_unknown)
    return result
