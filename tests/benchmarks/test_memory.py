"""The memory probes of the benchmarks."""
import torch
from torch import nn

from avtoolkit.benchmarks.memory import (MemoryProbe, profiler_peak_bytes,
                                         saved_activation_bytes, state_bytes)


def test_saved_activation_bytes_excludes_parameters():
    lin = nn.Linear(16, 16, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    # matmul saves its input x (4*16 floats) and the weight (excluded).
    assert saved_activation_bytes(lin, lambda: lin(x)) == 4 * 16 * 4


def test_state_bytes_counts_parameters_buffers_and_optimizer_state():
    from mmengine.optim import OptimWrapper
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))
    optim_wrapper = OptimWrapper(torch.optim.Adam(model.parameters()))
    before = state_bytes(model, optim_wrapper)
    params = (8 * 4 + 4 + 4 + 4) * 4
    # BatchNorm: running mean and var (float32), num_batches_tracked (int64).
    assert before == dict(param_bytes=params, buffer_bytes=4 * 4 * 2 + 8,
                          optimizer_state_bytes=0)
    optim_wrapper.update_params(model(torch.randn(3, 8)).sum())
    # Adam keeps two moments per parameter and a step count per tensor.
    state = state_bytes(model, optim_wrapper)['optimizer_state_bytes']
    assert state >= 2 * params


def test_memory_probe_on_the_cpu_reports_state_plus_rise():
    probe = MemoryProbe(torch.device('cpu'))
    probe.set_baseline()
    probe.start()
    block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    result = probe.stop(resident_state_bytes=1000)
    del block
    if result['peak_memory_bytes'] is None:  # no /proc/self/clear_refs
        assert result['peak_memory_kind'].startswith('not measured')
        return
    assert result['peak_memory_bytes'] == 1000 + \
        result['rss_step_rise_bytes']
    assert result['rss_step_rise_bytes'] >= 60 * 2**20


def test_profiler_peak_bytes_sees_a_temporary_tensor():
    def run():
        x = torch.ones(2**18)  # 1 MiB of float32, freed before returning
        return float(x.sum())

    assert profiler_peak_bytes(run) >= 2**20
