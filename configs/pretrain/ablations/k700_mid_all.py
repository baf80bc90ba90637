# Sharing ablation: the three Transformers are one dense Transformer whose
# single layer is applied six times (7,087,872 Transformer-layer parameters).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(share_transformers='all', share_layers=True))
