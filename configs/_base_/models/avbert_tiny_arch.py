# A small AVBERT for CPU demos and tests: the same classes and code paths as
# the paper model (SlowFast and bottleneck-ResNet CNNs, mid fusion, part
# sharing, CANS-Similar, MEP + CPP), with narrow CNNs and a 128-wide neck.
# Input: video (B, T, 3, 8, H, W) with H = W = 32 to 64, audio (B, T, 1, 64, 101).
# Without video normalisation: avbert_tiny.py adds it.  The demo ESC-50
# protocol, which reads the audio CNN only, uses this file.
model = dict(
    type='AVBERT',
    data_preprocessor=dict(type='AVDataPreprocessor'),
    visual_backbone=dict(
        type='ClipSequenceEncoder',
        cnn=dict(
            type='ResNet3dSlowFast',
            pretrained=None,
            resample_rate=4,
            speed_ratio=4,
            channel_ratio=4,
            slow_pathway=dict(
                type='resnet3d', depth=18, base_channels=8, pretrained=None,
                lateral=True, conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1),
                conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1)),
            fast_pathway=dict(
                type='resnet3d', depth=18, base_channels=2, pretrained=None,
                lateral=False, conv1_kernel=(5, 7, 7), conv1_stride_t=1,
                pool1_stride_t=1)),
        feat_dim=80,
        embed_dim=128,
        clip_ndim=4),
    audio_backbone=dict(
        type='ClipSequenceEncoder',
        cnn=dict(type='AudioResNet', depth=14, base_channels=8, stem_kernel=5,
                 strides=(1, 2, 2, 2)),
        feat_dim=256,
        embed_dim=128,
        clip_ndim=3),
    neck=dict(
        type='SharedLowRankTransformer',
        embed_dim=128,
        num_layers=2,
        num_heads=4,
        ffn_dim=256,
        fusion='mid',
        share_layers=True,
        share_transformers='part',
        rank=32,
        dropout=0.1,
        attn_dropout=0.1,
        max_seq_len=32),
    sampler=dict(type='CANSSampler', mode='similar', num_negatives=8),
    mep_head=dict(type='MEPHead', in_channels=128, proj_channels=64),
    cpp_head=dict(type='CPPHead', in_channels=128, hidden_channels=128),
    mask_generator=dict(ratio=0.15, mode='fixed', min_masked=1))
