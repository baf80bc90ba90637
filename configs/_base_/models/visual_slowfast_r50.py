# Visual CNN of the paper (Appendix A.1, Table 3): SlowFast with a ResNet-50
# backbone, speed ratio alpha = 8 and channel ratio beta = 1/8, trained from
# scratch.  Pretraining feeds 32-frame 112x112 clips: the slow pathway samples
# every 8th frame (T_s = 4) and the fast pathway takes all of them (T_f = 32).
# UCF101 fine-tuning feeds 64 frames (T_s = 8, T_f = 64) with the same model.
# Per clip: (3, 32, 112, 112) -> slow (2048, 4, 4, 4) and fast (256, 32, 4, 4)
# -> pooled 2048 + 256 = 2304 -> Linear + LayerNorm -> 768.
# Input of the encoder: (B, T, 3, F, H, W); output: (B, T, 768).
visual_backbone = dict(
    type='ClipSequenceEncoder',
    cnn=dict(
        type='ResNet3dSlowFast',
        pretrained=None,
        resample_rate=8,  # slow pathway: every 8th input frame
        speed_ratio=8,  # alpha: the fast pathway sees 8x the frames
        channel_ratio=8,  # 1 / beta: the fast pathway has 1/8 the width
        slow_pathway=dict(
            type='resnet3d',
            depth=50,
            pretrained=None,
            lateral=True,
            # Table 3, slow: conv1 1x7x7; 1x1x1 first convs in res2-res3,
            # 3x1x1 in res4-res5.
            conv1_kernel=(1, 7, 7),
            dilations=(1, 1, 1, 1),
            conv1_stride_t=1,
            pool1_stride_t=1,
            inflate=(0, 0, 1, 1)),
        fast_pathway=dict(
            type='resnet3d',
            depth=50,
            pretrained=None,
            lateral=False,
            # Table 3, fast: width 8, conv1 5x7x7, 3x1x1 first convs in every
            # stage.
            base_channels=8,
            conv1_kernel=(5, 7, 7),
            conv1_stride_t=1,
            pool1_stride_t=1)),
    feat_dim=2304,
    embed_dim=768,
    clip_chunk_size=None,
    with_cp=False,
    clip_ndim=4)
