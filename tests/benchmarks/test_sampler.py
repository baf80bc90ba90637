"""The negative-sampler benchmark and tools/analysis/benchmark_sampler.py on
tiny sizes (figures are not checked, only the records and the table)."""
import importlib.util
import json
import os


def test_benchmark_records_and_tool(repo_root, capsys):
    from avtoolkit.benchmarks.sampler import format_table, run_benchmark
    records = run_benchmark(sizes=((2, 3), ), dim=4, num_negatives=2,
                            chunk_size=2, repeats=1, warmup=0)
    assert len(records) == 7
    for rec in records:
        assert rec['clips'] == 6 and rec['time_ms'] >= 0
        assert rec['memory_measure'] == 'cpu profiler allocated-bytes peak'
    by_name = {r['sampler']: r for r in records}
    # The CANS distance matrix alone is 6 x 6 float32.
    assert by_name['CANS-Similar gaussian']['peak_bytes'] >= 6 * 6 * 4
    assert by_name['Current-MiniBatch all N-1']['num_negatives'] == 5
    table = format_table(records)
    assert 'CANS-Similar percentile' in table and '2x3=6 ms' in table

    path = os.path.join(repo_root, 'tools', 'analysis', 'benchmark_sampler.py')
    spec = importlib.util.spec_from_file_location('benchmark_sampler', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    capsys.readouterr()
    tool.main(['--device', 'cpu', '--json', '--sizes', '1x4', '--dim', '4',
               '--num-negatives', '2', '--repeats', '1', '--warmup', '0'])
    printed = json.loads(capsys.readouterr().out)
    assert {r['clips'] for r in printed} == {4}
    assert len(printed) == 7
