# Fine-tuning model of the UCF101 protocol (paper, Table 2(a) and A.3): the
# visual CNN alone (SlowFast-R50 of visual_slowfast_r50.py, without the
# Linear + LayerNorm projection into the Transformers) with a linear
# classifier on its globally pooled 2048 + 256 = 2304 channels, fine-tuned end
# to end, with the input normalisation of av_data_preprocessor.py.  With
# 64-frame clips the slow pathway sees T_s = 8 frames and the fast pathway
# T_f = 64.
#
# `pretrained`: a pretraining checkpoint; its visual_backbone.cnn.* tensors
# are loaded (no conversion needed).  The recipe sets num_classes.
# Input: video (B, [V,] T, 3, 64, H, W); every clip and view is classified,
# predict() averages the class probabilities over them.
_base_ = ['./visual_slowfast_r50.py', './av_data_preprocessor.py']

model = dict(
    type='VisualClassifier',
    data_preprocessor=_base_.av_data_preprocessor,
    backbone=_base_.visual_backbone.cnn,
    in_channels=_base_.visual_backbone.feat_dim,
    num_classes=None,
    head=dict(type='MLPClsHead', num_layers=0, dropout=0.5),
    view_reduce='mean',
    clip_chunk_size=None,
    pretrained=None,
    pretrained_prefix='visual_backbone.cnn.',
    strict_pretrained=True)
