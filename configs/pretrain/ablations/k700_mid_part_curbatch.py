# Sampler ablation (Table 1b): negatives uniformly from the whole mini-batch.
_base_ = ['./k700_mid_part_80k.py']

model = dict(sampler=dict(_delete_=True, type='CurrentMiniBatchSampler',
                          num_negatives=32))
