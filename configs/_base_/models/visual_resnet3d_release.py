# Visual CNN of the authors' release (a selectable alternative to the paper's
# SlowFast): a single-pathway 3D ResNet-50 of width 64 with temporal kernel
# sizes 5 (stem) / 1 (res2) / 1 (res3) / 3 (res4) / 3 (res5) and temporal
# stride 2 in the stem, no temporal pooling anywhere else.  The release feeds
# 32 frames sampled at stride 2 from 30 fps video, 112x112 crops (128 at test).
# Per clip: (3, 32, 112, 112) -> (2048, 16, 4, 4) -> pooled 2048
# -> Linear + LayerNorm -> 768.
# Input of the encoder: (B, T, 3, F, H, W); output: (B, T, 768).
visual_backbone = dict(
    type='ClipSequenceEncoder',
    cnn=dict(
        type='ResNet3d',
        depth=50,
        pretrained=None,
        pretrained2d=False,
        in_channels=3,
        base_channels=64,
        conv1_kernel=(5, 7, 7),
        conv1_stride_t=2,
        conv1_stride_s=2,
        pool1_stride_t=1,
        pool1_stride_s=2,
        with_pool2=False,
        # 3x1x1 first convolution in the blocks of res4 and res5 only.
        inflate=(0, 0, 1, 1),
        inflate_style='3x1x1',
        spatial_strides=(1, 2, 2, 2),
        temporal_strides=(1, 1, 1, 1)),
    feat_dim=2048,
    embed_dim=768,
    clip_chunk_size=None,
    with_cp=False,
    clip_ndim=4)
