# Sampler ablation (Table 1b, appendix B.1): CANS favouring dissimilar
# negatives.
_base_ = ['./k700_mid_part_80k.py']

model = dict(sampler=dict(mode='dissimilar'))
