# Sampler ablation (Table 1b): negatives from the current sequence only
# (all T-1 other clips of the same video).
_base_ = ['./k700_mid_part_80k.py']

model = dict(sampler=dict(_delete_=True, type='CurrentSequenceSampler',
                          num_negatives=None))
