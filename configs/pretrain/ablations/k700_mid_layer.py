# Sharing ablation: one dense layer per Transformer applied six times, no
# sharing across Transformers (21,263,616 Transformer-layer parameters).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(share_transformers='none', share_layers=True))
