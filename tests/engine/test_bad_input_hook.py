"""BadInputLoggerHook: counts from data samples, logs, resume state, dump."""
import json
from unittest.mock import MagicMock

from mmaction.structures import ActionDataSample
from mmengine.logging import MessageHub

from avtoolkit.datasets.bad_input import attach_records
from avtoolkit.engine import BadInputLoggerHook


def make_batch(records_per_sample):
    samples = []
    for records in records_per_sample:
        sample = dict(inputs={}, data_samples=ActionDataSample())
        if records:
            attach_records(sample, records)
        samples.append(sample['data_samples'])
    return dict(inputs={}, data_samples=samples)


def make_runner(tmp_path):
    runner = MagicMock()
    runner.rank = 0
    runner.iter = 0
    runner.work_dir = str(tmp_path)
    runner.message_hub = MessageHub.get_instance('bad_input_hook_test')
    return runner


def test_counts_logs_and_dump(tmp_path):
    hook = BadInputLoggerHook(interval=1)
    runner = make_runner(tmp_path)
    hook.before_train(runner)
    batch = make_batch([
        [dict(reason='no_audio', source='a.mp4')],
        [],
        [dict(reason='too_short', source='b.mp4'),
         dict(reason='no_audio', source='c.mp4')],
    ])
    hook.after_train_iter(runner, 0, batch)
    hook.after_train_iter(runner, 1, make_batch([[], []]))  # nothing new
    warnings = [c.args[0] for c in runner.logger.warning.call_args_list]
    assert len(warnings) == 1
    assert 'no_audio=2' in warnings[0] and 'too_short=1' in warnings[0]
    assert 'a.mp4' in warnings[0]
    # the counts travel with checkpoints through the message hub
    state = runner.message_hub.get_info('bad_input_counts')
    assert state['counts'] == {'no_audio': 2, 'too_short': 1}
    resumed = BadInputLoggerHook()
    resumed.before_train(runner)
    assert resumed.counters['train'].total == 3
    hook.after_train(runner)
    with open(tmp_path / 'bad_inputs_train.json') as f:
        dumped = json.load(f)
    assert dumped['total'] == 3
    assert dumped['counts'] == {'no_audio': 2, 'too_short': 1}


def test_each_validation_reports_its_own_counts(tmp_path):
    """A second validation (or test) run reports what it met, not the sum
    over every validation so far."""
    hook = BadInputLoggerHook(interval=1)
    runner = make_runner(tmp_path)
    for mode in ('val', 'test'):
        before = getattr(hook, f'before_{mode}_epoch')
        after_iter = getattr(hook, f'after_{mode}_iter')
        after = getattr(hook, f'after_{mode}_epoch')
        for expected in (2, 1):
            before(runner)
            records = [[dict(reason='looped', source=f'v{k}.mp4')]
                       for k in range(expected)]
            after_iter(runner, 0, make_batch(records))
            after(runner)
            with open(tmp_path / f'bad_inputs_{mode}.json') as f:
                dumped = json.load(f)
            assert dumped['counts'] == {'looped': expected}, (mode, dumped)
