# Sharing ablation: low-rank sharing across Transformers, but six distinct
# layers (23,063,040 Transformer-layer parameters).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(share_transformers='part', share_layers=False))
