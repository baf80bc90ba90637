# Sharing ablation (Table 1c): no sharing, three Transformers of six distinct
# dense layers each (127,581,696 Transformer-layer parameters).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(share_transformers='none', share_layers=False))
