# AVBERT as in the paper (Sec. 2, 2.2): visual SlowFast-R50 and audio ResNet-50
# CNNs (each (B, T, *clip) -> (B, T, 768)), then a visual, an audio and a
# multimodal Transformer (mid fusion; L=6, A=12, D=768, E=3072) that share one
# post-LN layer across depth and the low-rank factorisation
# W = U Sigma_m normalize(V_m x) + b across Transformers (rank O=128).
# Transformer layers: 3,843,840 parameters.  Pretrained with MEP + CPP.
# Without input normalisation: avbert_mid_part.py adds it.  ESC-50's frozen
# audio CNN protocol, which normalises in its pipeline, uses this file.
_base_ = ['./visual_slowfast_r50.py', './audio_resnet50.py']

model = dict(
    type='AVBERT',
    visual_backbone=_base_.visual_backbone,
    audio_backbone=_base_.audio_backbone,
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
        layer_norm_eps=1e-12),
    # Pretraining objectives (Sec. 2.1).  CANS-Similar negatives from the
    # CNN embeddings of the mini-batch (95% interval, mean +- 1.96 sigma).
    sampler=dict(type='CANSSampler', mode='similar', num_negatives=32,
                 interval=0.95, interval_method='gaussian'),
    # InfoNCE over the visual, audio and multimodal outputs, P = 256,
    # targets detached (the CNNs learn only through the Transformers).
    mep_head=dict(type='MEPHead', in_channels=768, proj_channels=256,
                  detach_targets=True),
    # Unimodal and multimodal correct pair prediction, alpha = 1.
    cpp_head=dict(type='CPPHead', in_channels=768, hidden_channels=768,
                  num_positions=2, loss_weight=1.0),
    # 15% of the clips (5 of 30) masked, the same in both modalities.
    mask_generator=dict(ratio=0.15, mode='fixed', min_masked=1))
