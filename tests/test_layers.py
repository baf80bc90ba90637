"""The package layers point down only (docs/architecture.md):

    apis -> engine, evaluation -> models, datasets -> checkpoint, utils,
    registry

and data preparation and benchmarks stay outside what training loads.
Each check runs in a fresh interpreter, so modules imported by other tests
do not count.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def loaded_modules(code: str) -> set:
    """The ``avtoolkit`` modules loaded after running ``code``."""
    script = code + (
        '\nimport json, sys\n'
        'print(json.dumps(sorted(m for m in sys.modules '
        "if m == 'avtoolkit' or m.startswith('avtoolkit.'))))")
    out = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _under(modules, *packages):
    return sorted(m for m in modules
                  if any(m == p or m.startswith(p + '.') for p in packages))


def test_models_load_no_evaluation_datasets_data_prep_or_benchmarks():
    modules = loaded_modules('import avtoolkit.models')
    assert 'avtoolkit.models.algorithms.avbert' in modules
    assert _under(modules, 'avtoolkit.evaluation', 'avtoolkit.datasets',
                  'avtoolkit.data_prep', 'avtoolkit.benchmarks',
                  'avtoolkit.engine', 'avtoolkit.apis') == []


def test_datasets_load_no_models_or_upper_layers():
    modules = loaded_modules('import avtoolkit.datasets')
    assert _under(modules, 'avtoolkit.models', 'avtoolkit.evaluation',
                  'avtoolkit.data_prep', 'avtoolkit.benchmarks',
                  'avtoolkit.engine', 'avtoolkit.apis') == []


def test_register_all_modules_loads_no_data_prep_or_benchmarks():
    modules = loaded_modules(
        'from avtoolkit.utils import register_all_modules\n'
        'register_all_modules()')
    assert 'avtoolkit.evaluation.protocols' in modules
    assert _under(modules, 'avtoolkit.data_prep', 'avtoolkit.benchmarks',
                  'avtoolkit.analysis', 'avtoolkit.apis') == []


@pytest.mark.parametrize('package', ['models', 'datasets'])
def test_no_benchmark_file_in_runtime_packages(package):
    found = [osp.join(root, name)
             for root, _, names in os.walk(osp.join(REPO, 'avtoolkit',
                                                    package))
             for name in names if 'benchmark' in name]
    assert found == []


def test_one_torch_load_call_site():
    """Every checkpoint is read through avtoolkit.checkpoint (one allowlist,
    one set of error messages): ``grep -rn "torch.load(" avtoolkit tools``
    finds one line."""
    sites = []
    for top in ('avtoolkit', 'tools'):
        for root, _, names in os.walk(osp.join(REPO, top)):
            for name in names:
                if not name.endswith('.py'):
                    continue
                path = osp.join(root, name)
                with open(path, encoding='utf-8') as f:
                    for number, line in enumerate(f, 1):
                        if 'torch.load(' in line:
                            sites.append(f'{osp.relpath(path, REPO)}:{number}')
    assert len(sites) == 1 and sites[0].startswith(
        osp.join('avtoolkit', 'checkpoint') + os.sep), sites
