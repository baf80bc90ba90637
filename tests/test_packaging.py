"""The built wheel contains and imports every avtoolkit submodule."""
import os
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
print(len(names), 'modules imported from', avtoolkit.__file__)
'''


@pytest.mark.slow
def test_wheel_imports_every_submodule(tmp_path, repo_root):
    wheel_dir, target = tmp_path / 'wheel', tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(wheel_dir),
                    repo_root], check=True, capture_output=True)
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
    count = int(proc.stdout.split()[0])
    source_count = sum(
        len([f for f in files if f.endswith('.py')])
        for _, _, files in os.walk(os.path.join(repo_root, 'avtoolkit')))
    # Every .py file is a module (package __init__ files count as packages).
    assert count == source_count - 1, (count, source_count)
