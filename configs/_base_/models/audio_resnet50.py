# Audio CNN of the paper (Appendix A.1, Table 3): a 2D bottleneck ResNet-50 of
# width 32 on log-mel spectrograms of 128 bins x T_a frames (T_a = 220 for the
# 1-s clips of pretraining, 440 for the 2-s clips of fine-tuning).  Stem: one
# 9x9 convolution with 32 channels and stride 1, no pooling.  Stages: widths
# 32/64/128/256, outputs 128/256/512/1024, stride 2 in the first block of
# res3-res5.
# Per clip: (1, 128, 220) -> (1024, 16, 28) -> pooled 1024
# -> Linear + LayerNorm -> 768.
# Input of the encoder: (B, T, 1, n_mels, T_a); output: (B, T, 768).
audio_backbone = dict(
    type='ClipSequenceEncoder',
    cnn=dict(
        type='AudioResNet',
        depth=50,
        in_channels=1,
        base_channels=32,
        stem_type='full',
        stem_kernel=9,
        stem_stride=1,
        strides=(1, 2, 2, 2)),
    feat_dim=1024,
    embed_dim=768,
    clip_chunk_size=None,
    with_cp=False,
    clip_ndim=3)
