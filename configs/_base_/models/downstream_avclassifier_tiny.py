# The fine-tuning model of downstream_avclassifier.py at the size of
# avbert_tiny.py (CPU demos and tests): a checkpoint of
# configs/pretrain/demo_mid_part.py loads into it with no missing encoder key.
# Input: video (B, [V,] T, 3, 8, H, W), audio (B, [V,] T, 1, 64, 101).
_base_ = ['./avbert_tiny.py']

model = dict(
    _delete_=True,
    type='AVClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    visual_backbone={{_base_.model.visual_backbone}},
    audio_backbone={{_base_.model.audio_backbone}},
    neck={{_base_.model.neck}},
    num_classes=None,
    modality='multimodal',
    feature=None,
    head=dict(type='MLPClsHead', hidden_channels=128, num_layers=2,
              act='gelu', dropout=0.1),
    multi_label=False,
    view_reduce='mean',
    pretrained=None,
    strict_pretrained=True)
