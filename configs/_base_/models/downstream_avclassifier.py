# Fine-tuning model of the Kinetics-Sounds and Charades protocols (paper,
# Sec. 3 and Table 2(c)): the whole AVBERT of avbert_mid_part.py (SlowFast-R50
# and ResNet-50 CNNs, visual, audio and multimodal Transformers with part
# sharing, input normalisation) with a 2-layer MLP and a classifier on a
# pooled feature.
#
# modality: 'multimodal' (M, both CNNs and all three Transformers), 'visual'
# (V, visual CNN + visual Transformer) or 'audio' (A).  Pooled feature: the
# summary (BOS) outputs, z_summary (2 x 768) for M, y_summary (768) for V/A;
# set `feature` to any name of avtoolkit.evaluation.features to change it.
#
# Input: video (B, [V,] T, 3, 32, H, W), audio (B, [V,] T, 1, 128, 220);
# output: one probability vector per sample, pooled over the V views.
# `pretrained` (a pretraining checkpoint) is loaded by init_weights; the
# recipe sets num_classes.
_base_ = ['./avbert_mid_part.py']

model = dict(
    _delete_=True, type='AVClassifier',
    data_preprocessor=_base_.model.data_preprocessor,
    visual_backbone=_base_.model.visual_backbone,
    audio_backbone=_base_.model.audio_backbone, neck=_base_.model.neck,
    num_classes=None, modality='multimodal', feature=None,
    head=dict(type='MLPClsHead', hidden_channels=768, num_layers=2,
              act='gelu', dropout=0.1),
    multi_label=False, view_reduce='mean', pretrained=None,
    strict_pretrained=True)
