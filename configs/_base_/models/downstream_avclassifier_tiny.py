# The fine-tuning model of downstream_avclassifier.py at the size of
# avbert_tiny.py (CPU demos and tests): a checkpoint of
# configs/pretrain/demo_mid_part.py loads into it with no missing encoder key.
# Input: video (B, [V,] T, 3, 8, H, W), audio (B, [V,] T, 1, 64, 101).
_base_ = ['./avbert_tiny.py']

model = dict(
    _delete_=True, type='AVClassifier',
    data_preprocessor=_base_.model.data_preprocessor,
    visual_backbone=_base_.model.visual_backbone,
    audio_backbone=_base_.model.audio_backbone, neck=_base_.model.neck,
    num_classes=None, modality='multimodal', feature=None,
    # norm='batch': standardise the pooled feature before the MLP.  Without
    # it the head learned nothing on the demo data (loss ln 10 for 200
    # iterations, from pretrained and random weights alike): the features
    # vary between videos by a few percent of an offset they all share.
    head=dict(type='MLPClsHead', hidden_channels=128, num_layers=2,
              act='gelu', dropout=0.1, norm='batch'),
    multi_label=False, view_reduce='mean', pretrained=None,
    strict_pretrained=True)
