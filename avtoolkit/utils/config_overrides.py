"""Checks of ``--cfg-options`` overrides before they are merged.

A Python config file is evaluated once, when it is read: a top-level
variable such as ``max_iters = 300`` has already been copied into every
entry built from it (``train_cfg = dict(max_iters=max_iters)``) by the time
``--cfg-options max_iters=2`` is merged.  mmengine then changes the
variable alone and the run trains 300 iterations anyway; an overridden
``data_root`` keeps reading the old folder.

:func:`check_top_level_overrides` refuses such an override before the run
starts.  It reads the config file and its ``_base_`` files as syntax trees
(nothing is executed), finds the top-level statements that use the
variable (by name, as ``_base_.name`` or as ``{{_base_.name}}``), and names
the entries to set instead, with the dotted keys that hold the variable's
value.  A top-level key that the config does not have and the Runner does
not read is refused too (it would be ignored), with the nearest known
names.
"""
import ast
import difflib
import inspect
import os.path as osp
from typing import Any, Dict, Iterator, List, Mapping, Set, Tuple

__all__ = ['ConfigOverrideError', 'check_top_level_overrides']

BASE_KEY = '_base_'
# Top-level keys read by the entry points besides the Runner's arguments.
ENTRY_POINT_KEYS = frozenset({
    'runner_type', 'custom_imports', 'pretrained', 'protocol',
    'synthetic_data', 'synthetic_downstream', 'train_pipeline',
    'work_dir', 'load_from', 'resume'
})


class ConfigOverrideError(ValueError):
    """An override that would be ignored; the message names what to set
    instead."""


def _base_files(path: str, tree: ast.Module) -> List[str]:
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == BASE_KEY
                for t in statement.targets):
            try:
                value = ast.literal_eval(statement.value)
            except ValueError:
                return []
            names = [value] if isinstance(value, str) else list(value)
            return [osp.normpath(osp.join(osp.dirname(path), name))
                    for name in names if '::' not in name]
    return []


def _config_files(path: str) -> Iterator[Tuple[str, ast.Module]]:
    """``path`` and its ``_base_`` files, recursively, as syntax trees."""
    seen: Set[str] = set()
    stack = [osp.abspath(path)]
    while stack:
        current = stack.pop()
        if current in seen or not current.endswith('.py') or \
                not osp.isfile(current):
            continue
        seen.add(current)
        with open(current, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=current)
        yield current, tree
        stack.extend(_base_files(current, tree))


def _uses(node: ast.AST, name: str) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id == name and \
                isinstance(child.ctx, ast.Load):
            return True
        if isinstance(child, ast.Attribute) and child.attr == name and \
                isinstance(child.value, ast.Name) and \
                child.value.id == BASE_KEY:
            return True
        if isinstance(child, ast.Constant) and isinstance(
                child.value, str) and f'{BASE_KEY}.{name}' in child.value:
            return True
    return False


def _targets(statement: ast.stmt) -> List[str]:
    targets = getattr(statement, 'targets', None) or [
        getattr(statement, 'target', None)]
    names = []
    for target in targets:
        for node in ast.walk(target) if target is not None else ():
            if isinstance(node, ast.Name):
                names.append(node.id)
    return names


def variable_uses(path: str, name: str) -> List[Tuple[str, int, List[str]]]:
    """``(file, line, assigned names)`` of every top-level statement of the
    config at ``path`` (and its bases) that reads the variable ``name``."""
    found = []
    for file, tree in _config_files(path):
        for statement in tree.body:
            if _uses(statement, name):
                targets = [t for t in _targets(statement) if t != name]
                found.append((file, statement.lineno, targets))
    return found


def _built_entries(path: str, name: str) -> List[str]:
    """The top-level entries built from ``name``, directly or through other
    variables, leaving out plain values that only feed other entries (such
    a ``video_prefix`` is no place to set the new value either)."""
    entries, seen, todo = [], {name}, [name]
    while todo:
        current = todo.pop()
        targets = [t for _, _, ts in variable_uses(path, current) for t in ts]
        if current != name:
            entries.append(current)
        for target in targets:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(entries)


def _paths_holding(value: Any, cfg: Any, prefix: str = '') -> Iterator[str]:
    """Dotted keys under ``cfg`` whose value is ``value`` (or, for a
    string, contains it)."""
    if isinstance(cfg, Mapping):
        for key, child in cfg.items():
            yield from _paths_holding(value, child,
                                      f'{prefix}.{key}' if prefix else key)
    elif isinstance(cfg, (list, tuple)):
        for index, child in enumerate(cfg):
            yield from _paths_holding(value, child, f'{prefix}.{index}')
    elif type(cfg) is type(value) and (
            cfg == value or isinstance(value, str) and value and value in cfg):
        yield prefix


def _known_top_level_keys() -> Set[str]:
    from mmengine.runner import Runner
    parameters = inspect.signature(Runner.__init__).parameters
    return set(parameters) - {'self', 'cfg'} | ENTRY_POINT_KEYS


def check_top_level_overrides(path: str, cfg: Mapping,
                              options: Mapping[str, Any]) -> None:
    """Refuse ``options`` (``--cfg-options``, before merging into ``cfg``,
    the config read from ``path``) that set a top-level variable other
    entries were built from, or a top-level key nothing reads.

    Raises:
        ConfigOverrideError: naming the override, where the variable is
            used and the keys to set instead.
    """
    problems = []
    for key, new in options.items():
        if '.' in key:
            continue
        if key not in cfg:
            if key not in _known_top_level_keys():
                close = difflib.get_close_matches(
                    key, list(cfg.keys()) + sorted(_known_top_level_keys()),
                    n=3)
                hint = (f'; did you mean {", ".join(close)}?' if close
                        else '')
                problems.append(
                    f'{key}={new!r}: the config has no top-level "{key}" '
                    f'and nothing reads it, so the value would be ignored'
                    f'{hint} (a custom component that reads a new top-level '
                    'key needs it declared in the config file)')
            continue
        uses = variable_uses(path, key)
        if not uses:
            continue
        old = cfg[key]
        where = ', '.join(
            f'{"/".join(targets) or "a statement"} '
            f'({osp.relpath(file)}:{line})' for file, line, targets in uses)
        dependents: Dict[str, None] = {}
        for target in _built_entries(path, key):
            feeds_others = bool(variable_uses(path, target))
            if target in cfg and not (feeds_others and not isinstance(
                    cfg[target], (Mapping, list, tuple))):
                for dotted in _paths_holding(old, cfg[target], target):
                    dependents.setdefault(dotted)
        suggestion = ''
        if dependents:
            shown = list(dependents)[:8]
            suggestion = (' Set the entries that hold its value instead: '
                          + ', '.join(shown)
                          + (' ...' if len(dependents) > 8 else '') + '.')
        problems.append(
            f'{key}={new!r}: "{key}" is a variable that the config file '
            f'already used when it was read, in {where}; overriding it now '
            f'would change "{key}" alone.{suggestion} Or change it in the '
            'config file itself.')
    if problems:
        raise ConfigOverrideError(
            f'--cfg-options for {path} would be ignored:\n  - '
            + '\n  - '.join(problems))

