# The toy Runner job with a test split scored by mean squared error.
_base_ = ['./toy_runner.py']

test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyRegressionDataset', num_samples=16, in_dim=8,
                 seed=1))
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='ToyMSEMetric')
