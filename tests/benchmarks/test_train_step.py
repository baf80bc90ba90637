"""tools/analysis/benchmark_train.py on a tiny config and tiny inputs.

Timings are not checked, only that the script runs and that its JSON has
every field, with figures consistent with each other.
"""
import importlib.util
import json
import os.path as osp
import statistics

import pytest
import torch
from mmengine.config import Config

from avtoolkit.benchmarks.breakdown import COMPONENTS
from avtoolkit.benchmarks.report import peak_tflops_for, project_recipe
from avtoolkit.benchmarks.train_config import input_shapes_from_config
from avtoolkit.benchmarks.train_step import run_benchmark

# The tiny model of the demo with narrower Transformers and small clips.
TINY_OPTIONS = [
    'model.neck.embed_dim=32', 'model.neck.num_heads=2',
    'model.neck.ffn_dim=64', 'model.neck.rank=8',
    'model.visual_backbone.embed_dim=32', 'model.audio_backbone.embed_dim=32',
    'model.mep_head.in_channels=32', 'model.mep_head.proj_channels=16',
    'model.cpp_head.in_channels=32', 'model.cpp_head.hidden_channels=32',
    'model.sampler.num_negatives=4'
]
TINY_SHAPES = ['--num-clips', '3', '--video-clip-shape', '3', '4', '16',
               '16', '--audio-clip-shape', '1', '32', '32']


def _load_tool(repo_root):
    path = osp.join(repo_root, 'tools/analysis/benchmark_train.py')
    spec = importlib.util.spec_from_file_location('benchmark_train_tool',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def configs(repo_root, tmp_path_factory):
    demo = osp.join(repo_root, 'configs/pretrain/demo_mid_part.py')
    folder = tmp_path_factory.mktemp('configs')
    none = folder / 'demo_none.py'
    none.write_text(f"_base_ = [{demo!r}]\n"
                    "model = dict(neck=dict(share_transformers='none', "
                    "share_layers=False))\n")
    return demo, str(none)


def _run(tool, configs, out, *extra):
    demo, none = configs
    argv = [demo, '--compare-config', none, '--batch-size', '2',
            '--iters', '2', '--warmup', '0', '--breakdown-iters', '1',
            '--threads', '1', '--quiet', '--json', str(out), *TINY_SHAPES,
            *extra, '--cfg-options', *TINY_OPTIONS]
    tool.main(argv)
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def result(repo_root, configs, tmp_path_factory):
    tool = _load_tool(repo_root)
    out = tmp_path_factory.mktemp('bench') / 'train.json'
    return _run(tool, configs, out)


def test_json_fields_and_consistency(result):
    assert result['command'] and 'benchmark_train.py' in result['command']
    env = result['environment']
    assert env['torch'] == torch.__version__ and env['mmengine']
    assert result['settings']['device'] == 'cpu'
    entries = result['results']
    assert [(e['label'], e['batch_size']) for e in entries] == [
        ('demo_mid_part', 2), ('demo_none', 2)]
    for e in entries:
        b = e['batch_size']
        assert e['video_shape'] == [b, 3, 3, 4, 16, 16]
        assert e['audio_shape'] == [b, 3, 1, 32, 32]
        assert e['num_clips'] == 3 and e['num_clips_config'] == 8
        assert e['num_clips_changed'] is True
        assert len(e['times_s']) == 2 and e['warmup_times_s'] == []
        assert e['step_s'] == pytest.approx(statistics.median(e['times_s']))
        assert e['samples_per_s'] == pytest.approx(b / e['step_s'])
        assert e['forward_flops'] > 0 and e['backward_flops'] > 0
        assert e['flops_per_step'] == e['forward_flops'] + \
            e['backward_flops']
        assert e['flops_per_sample'] == pytest.approx(e['flops_per_step'] / b)
        assert e['achieved_tflops'] == pytest.approx(
            e['flops_per_step'] / e['step_s'] / 1e12)
        assert e['mfu'] is None  # no peak rate on the CPU unless given
        assert e['params_total'] == sum(e['params_modules'].values())
        assert e['param_bytes'] == 4 * e['params_total']
        assert e['optimizer_state_bytes'] > 0
        assert e['peak_memory_bytes'] is None or \
            e['peak_memory_bytes'] >= e['param_bytes']
        assert e['saved_activation_bytes'] > 0
        assert e['checkpointing'] is False
        parts = e['breakdown']['parts']
        assert list(parts) == list(COMPONENTS)
        for name in ('visual_cnn', 'audio_cnn', 'neck', 'heads'):
            assert parts[name]['flops'] > 0, name
            assert parts[name]['share_of_step'] == pytest.approx(
                parts[name]['step_s'] / e['step_s'])
        assert e['breakdown']['sum_s'] == pytest.approx(
            sum(p['step_s'] for p in parts.values()))
        # The parts hold the CNN and Transformer FLOPs of the step.
        cnn_neck = sum(parts[n]['flops']
                       for n in ('visual_cnn', 'audio_cnn', 'neck'))
        assert cnn_neck <= e['flops_per_step']
    by_key = {(e['label'], e['batch_size']): e for e in entries}
    # The part-sharing model has fewer Transformer-layer parameters.
    assert by_key[('demo_mid_part', 2)]['params_transformer_layers'] < \
        by_key[('demo_none', 2)]['params_transformer_layers']


def test_ratios_come_from_the_two_entries(result):
    by_key = {(e['label'], e['batch_size']): e for e in result['results']}
    ratios = result['ratios']
    assert [(r['config'], r['compare'], r['batch_size'])
            for r in ratios] == [('demo_mid_part', 'demo_none', 2)]
    for r in ratios:
        part = by_key[('demo_mid_part', r['batch_size'])]
        none = by_key[('demo_none', r['batch_size'])]
        assert r['speedup'] == pytest.approx(none['step_s'] / part['step_s'])
        assert r['step_time_ratio'] == pytest.approx(1 / r['speedup'])
        assert r['samples_per_s_ratio'] == pytest.approx(
            part['samples_per_s'] / none['samples_per_s'])
        assert r['flops_ratio'] == pytest.approx(
            part['flops_per_step'] / none['flops_per_step'])
        assert r['params_ratio'] == pytest.approx(
            part['params_total'] / none['params_total'])
        assert r['saved_activation_ratio'] == pytest.approx(
            part['saved_activation_bytes'] / none['saved_activation_bytes'])


def test_projection(result):
    recipe = result['recipe']
    assert recipe['max_iters'] == 300  # train_cfg of the demo config
    assert recipe['global_batch'] == 256
    total = recipe['max_iters'] * recipe['global_batch']
    for e in result['results']:
        for key, scale in (('projection', 1.0),
                           ('projection_t_scaled', 3 / 8)):
            proj = e[key]
            assert proj['total_samples'] == total
            rate = e['samples_per_s'] * scale
            assert proj['per_device_samples_per_s'] == pytest.approx(rate)
            for n in (8, 64):
                assert proj['hours'][str(n)] == pytest.approx(
                    total / (rate * n) / 3600)
    assert any('linear scaling' in note for note in result['notes'])
    assert any('T was changed' in note for note in result['notes'])


def test_table_and_batch_sizes(repo_root, configs, tmp_path, capsys):
    tool = _load_tool(repo_root)
    demo, _ = configs
    out = tmp_path / 'two_batches.json'
    tool.main([demo, '--batch-size', '3', '2', '--iters', '1', '--warmup',
               '0', '--breakdown-iters', '0', '--threads', '1', '--quiet',
               '--peak-tflops', '1', '--json', str(out), *TINY_SHAPES,
               '--cfg-options', *TINY_OPTIONS])
    text = capsys.readouterr().out
    for word in ('samples/s', 'GFLOP/step', 'MFU', 'demo_mid_part',
                 'projected wall-clock', 'linear scaling', '8 devices'):
        assert word in text, word
    assert '%' in text  # MFU against the given peak rate
    with open(out) as f:
        result = json.load(f)
    entries = result['results']
    # Batch sizes are measured in increasing order; FLOPs grow with B.
    assert [e['batch_size'] for e in entries] == [2, 3]
    assert entries[1]['flops_per_step'] > entries[0]['flops_per_step']
    for e in entries:
        assert e['mfu'] == pytest.approx(e['achieved_tflops'] / 1.0)
        assert 'breakdown' not in e
    assert result['ratios'] == []


def test_with_cp_reduces_saved_activations(repo_root, configs, tmp_path,
                                           result):
    tool = _load_tool(repo_root)
    demo, _ = configs
    out = tmp_path / 'cp.json'
    tool.main([demo, '--batch-size', '2', '--iters', '1', '--warmup', '0',
               '--breakdown-iters', '0', '--threads', '1', '--quiet',
               '--with-cp', '--json', str(out), *TINY_SHAPES,
               '--cfg-options', *TINY_OPTIONS])
    with open(out) as f:
        cp = json.load(f)['results'][0]
    plain = next(e for e in result['results']
                 if e['label'] == 'demo_mid_part' and e['batch_size'] == 2)
    assert cp['checkpointing'] is True
    assert cp['saved_activation_bytes'] < 0.5 * plain[
        'saved_activation_bytes']
    # FLOPs are model FLOPs (no recomputation counted).
    assert cp['flops_per_step'] == plain['flops_per_step']


def test_bf16_autocast_on_the_cpu(repo_root, configs, tmp_path):
    tool = _load_tool(repo_root)
    demo, _ = configs
    out = tmp_path / 'bf16.json'
    tool.main([demo, '--batch-size', '2', '--iters', '1', '--warmup', '0',
               '--breakdown-iters', '0', '--threads', '1', '--quiet',
               '--dtype', 'bf16', '--json', str(out), *TINY_SHAPES,
               '--cfg-options', *TINY_OPTIONS])
    with open(out) as f:
        result = json.load(f)
    assert result['settings']['dtype'] == 'bf16'
    entry = result['results'][0]
    assert entry['flops_per_step'] > 0 and entry['step_s'] > 0


def test_input_shapes_of_the_paper_config(repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/pretrain/k700_mid_part.py'))
    shapes = input_shapes_from_config(cfg)
    assert shapes['video'] == (30, 3, 32, 112, 112)
    assert shapes['audio'] == (30, 1, 128, 220)
    assert shapes['num_clips'] == shapes['num_clips_config'] == 30
    assert input_shapes_from_config(cfg, num_clips=3)['video'][0] == 3


def test_input_shapes_need_a_pipeline_or_overrides(repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/models/avbert_tiny.py'))
    with pytest.raises(ValueError, match='--num-clips'):
        input_shapes_from_config(cfg)
    with pytest.raises(ValueError, match='--video-clip-shape'):
        input_shapes_from_config(cfg, num_clips=4)
    shapes = input_shapes_from_config(cfg, 4, (3, 8, 32, 32), (1, 64, 101))
    assert shapes['video'] == (4, 3, 8, 32, 32)
    assert shapes['num_clips_config'] is None
    with pytest.raises(ValueError, match='4 positive ints'):
        input_shapes_from_config(cfg, 4, (3, 8, 32), (1, 64, 101))


def test_peak_rates_and_projection_arguments():
    assert peak_tflops_for(torch.device('cpu'), 'fp32')[0] is None
    assert peak_tflops_for(torch.device('cpu'), 'bf16', 2.5) == (2.5,
                                                                   'given')
    with pytest.raises(ValueError):
        peak_tflops_for(torch.device('cpu'), 'fp32', 0)
    proj = project_recipe(10.0, 1000, 256, devices=(8, ))
    assert proj['hours']['8'] == pytest.approx(1000 * 256 / 80 / 3600)
    with pytest.raises(ValueError):
        project_recipe(0.0, 1000, 256)


@pytest.mark.parametrize('kwargs,match', [
    (dict(dtype='fp16'), 'bf16 on the CPU'),
    (dict(dtype='int8'), 'dtype must be'),
    (dict(device='tpu'), 'cpu or cuda'),
    (dict(find_max_batch=True), 'CUDA'),
    (dict(batch_sizes=[0]), 'positive'),
    (dict(batch_sizes=[2, 2]), 'repeat'),
    (dict(iters=0), 'iters'),
    (dict(compile_step=True, warmup=0), 'warmup'),
    (dict(compile_step='everything'), 'compile_step'),
])
def test_bad_arguments(configs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_benchmark([configs[0]], **kwargs)


def test_batch_of_one_is_refused_with_cpp(configs):
    demo, _ = configs
    with pytest.raises(ValueError, match='at least two sequences'):
        run_benchmark([demo], batch_sizes=[1], iters=1, warmup=0,
                      breakdown_iters=0, num_clips=4,
                      video_clip_shape=(3, 8, 16, 16),
                      audio_clip_shape=(1, 32, 51))


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        run_benchmark([str(tmp_path / 'nope.py')])


def test_a_batch_out_of_memory_is_reported(configs, monkeypatch):
    from avtoolkit.benchmarks.report import format_report
    from avtoolkit.models.algorithms import AVBERT

    plain_step = AVBERT.train_step

    def train_step(self, data, optim_wrapper):
        if data['inputs']['video'].shape[0] == 3:
            raise torch.cuda.OutOfMemoryError(
                'CUDA out of memory. Tried to allocate 1 GiB\ndetails')
        return plain_step(self, data, optim_wrapper)

    monkeypatch.setattr(AVBERT, 'train_step', train_step)
    options = {k: int(v) for k, v in (o.split('=') for o in TINY_OPTIONS)}
    result = run_benchmark([configs[0]], batch_sizes=[3, 2], iters=1,
                           warmup=0, breakdown_iters=0, num_clips=3,
                           video_clip_shape=(3, 4, 16, 16),
                           audio_clip_shape=(1, 32, 32),
                           cfg_options=options, threads=1)
    fits, oom = result['results']
    assert (fits['batch_size'], fits['oom']) == (2, False)
    assert fits['step_s'] > 0 and 'projection' in fits
    assert oom == dict(config=configs[0], label='demo_mid_part',
                       sharing='part', batch_size=3, oom=True,
                       error='CUDA out of memory. Tried to allocate 1 GiB')
    assert 'out of memory' in format_report(result)
