# AVBERT as in the paper (Sec. 2, 2.2): visual SlowFast-R50 and audio ResNet-50
# CNNs (each (B, T, *clip) -> (B, T, 768)), then a visual, an audio and a
# multimodal Transformer (mid fusion; L=6, A=12, D=768, E=3072) that share one
# post-LN layer across depth and the low-rank factorisation
# W = U Sigma_m normalize(V_m x) + b across Transformers (rank O=128).
# Transformer layers: 3,843,840 parameters.
_base_ = ['./visual_slowfast_r50.py', './audio_resnet50.py']

model = dict(
    type='AVBERTEncoder',
    visual_backbone={{_base_.visual_backbone}},
    audio_backbone={{_base_.audio_backbone}},
    neck=dict(
        type='SharedLowRankTransformer',
        embed_dim=768,
        num_layers=6,
        num_heads=12,
        ffn_dim=3072,
        fusion='mid',
        share_layers=True,
        share_transformers='part',
        rank=128,
        dropout=0.1,
        attn_dropout=0.1,
        max_seq_len=64,
        norm_first=False,
        layer_norm_eps=1e-12))
