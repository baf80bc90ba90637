"""The benchmark of the neck's parameter-sharing variants, on a tiny neck."""
import pytest

from avtoolkit.benchmarks.neck import benchmark_neck_variants, format_benchmark

# A tiny neck (as in tests/models/test_shared_lowrank_transformer.py).
D, HEADS, FFN, RANK, LAYERS = 32, 4, 64, 8, 2


def test_benchmark_reports_every_variant():
    results = benchmark_neck_variants(
        variants=['none', 'part'], batch=2, seq_len=4, repeats=2,
        neck_cfg=dict(embed_dim=D, num_heads=HEADS, ffn_dim=FFN, rank=RANK,
                      num_layers=LAYERS))
    assert set(results) == {'none', 'part'}
    assert results['none']['speedup_vs_none'] == 1.0
    assert len(results['part']['times_s']) == 2
    assert results['part']['params_transformer_layers'] < \
        results['none']['params_transformer_layers']
    assert results['part']['saved_bytes'] > 0
    table = format_benchmark(results)
    assert 'part' in table and 'none' in table
    with pytest.raises(ValueError, match='unknown variants'):
        benchmark_neck_variants(variants=['bogus'])
