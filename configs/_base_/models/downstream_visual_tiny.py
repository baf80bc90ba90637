# The UCF101 fine-tuning model of downstream_visual_slowfast_r50.py with the
# narrow SlowFast of avbert_tiny.py (CPU demos and tests; 80 pooled channels).
_base_ = ['./avbert_tiny.py']

model = dict(
    _delete_=True,
    type='VisualClassifier',
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.visual_backbone.cnn,
    in_channels=_base_.model.visual_backbone.feat_dim,
    num_classes=None,
    # standardised pooled CNN features (see downstream_avclassifier_tiny.py)
    head=dict(type='MLPClsHead', num_layers=0, dropout=0.5, norm='batch'),
    view_reduce='mean',
    clip_chunk_size=None,
    pretrained=None,
    pretrained_prefix='visual_backbone.cnn.',
    strict_pretrained=True)
