"""The built wheel contains and imports every avtoolkit submodule."""
import os
import shutil
import subprocess
import sys

import pytest

IMPORT_ALL = '''
import importlib, pkgutil, sys
import avtoolkit
assert avtoolkit.__file__.startswith(sys.argv[1]), avtoolkit.__file__
names = [m.name for m in pkgutil.walk_packages(avtoolkit.__path__, 'avtoolkit.')]
for name in names:
    importlib.import_module(name)
print(' '.join(sorted(names)))
'''


def source_modules(root):
    names = set()
    for folder, _, files in os.walk(os.path.join(root, 'avtoolkit')):
        for name in files:
            if name.endswith('.py'):
                rel = os.path.relpath(os.path.join(folder, name[:-3]), root)
                module = rel.replace(os.sep, '.')
                names.add(module[:-len('.__init__')]
                          if module.endswith('.__init__') else module)
    names.discard('avtoolkit')
    return names


@pytest.mark.slow
def test_wheel_imports_every_submodule(tmp_path, repo_root):
    wheel_dir, target = tmp_path / 'wheel', tmp_path / 'site'
    # Build from a clean copy: a build/ folder left in the checkout by an
    # earlier build could smuggle stale modules into the wheel.
    src = tmp_path / 'src'
    shutil.copytree(os.path.join(repo_root, 'avtoolkit'), src / 'avtoolkit',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.cfg', 'pyproject.toml', 'README.md'):
        shutil.copy(os.path.join(repo_root, name), src / name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(wheel_dir),
                    str(src)], check=True, capture_output=True)
    wheels = list(wheel_dir.glob('avtoolkit-*.whl'))
    assert len(wheels) == 1
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
                    '--target', str(target), str(wheels[0])],
                   check=True, capture_output=True)
    # Run outside the checkout so only the installed copy can be imported.
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, '-c', IMPORT_ALL, str(target)],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(proc.stdout.split()) == source_modules(repo_root)
