"""The benchmarks package: small documented modules, no undefined names,
no reach into the model's private attributes, files written atomically."""
import ast
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODULES = sorted(glob.glob(osp.join(REPO, 'avtoolkit', 'benchmarks', '*.py')))


def _source(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def test_modules_are_small_and_documented():
    assert len(MODULES) >= 9
    for path in MODULES:
        text = _source(path)
        assert text.count('\n') < 600, path
        assert ast.get_docstring(ast.parse(text)), path


def test_no_undefined_or_unused_names():
    """pyflakes finds nothing (names deleted while a nested function still
    refers to them read as undefined names)."""
    pytest.importorskip('pyflakes')
    from pyflakes.api import checkPath
    from pyflakes.reporter import Reporter

    class Collect(Reporter):

        def __init__(self):
            self.messages = []

        def flake(self, message):
            self.messages.append(str(message))

        def syntaxError(self, filename, msg, lineno, offset, text):
            self.messages.append(f'{filename}:{lineno}: {msg}')

        def unexpectedError(self, filename, msg):
            self.messages.append(f'{filename}: {msg}')

    reporter = Collect()
    for path in MODULES:
        checkPath(path, reporter)
    assert reporter.messages == []


def test_no_private_model_attributes():
    """The benchmarks time the model's public methods; AVBERT's internals
    may change under them."""
    private = re.compile(r'\bmodel\._\w+|\._needs_mismatched_pass|'
                         r'\._run_forward|_compiled_call_impl')
    for path in MODULES:
        found = private.findall(_source(path))
        assert found == [], (path, found)


def test_no_plain_file_writes():
    """Files are written through avtoolkit.utils.atomic (PyAV writes to the
    temporary path that ``atomic_path`` gives)."""
    plain = re.compile(r"""(?<![\w.])open\([^)]*,\s*['"][wa]b?['"]""")
    for path in MODULES:
        if osp.basename(path) == 'memory.py':
            continue  # /proc/self/clear_refs is a control file, not output
        assert plain.findall(_source(path)) == [], path
