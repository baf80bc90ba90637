# demo/kinetics_sounds_mid.py in the visual-only setting (V): the visual
# CNN and the visual Transformer; the audio stream is neither decoded nor
# modelled.  Pooled feature: the mean of the visual Transformer's outputs
# (the paper: its BOS summary).
_base_ = ['./kinetics_sounds_mid.py', '../../_base_/single_modality.py']

# y_mean, not y_summary: see kinetics_sounds_mid.py
model = dict(modality='visual', feature='y_mean')
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.video_only)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.video_only)))
test_dataloader = dict(dataset=dict(pipeline=_base_.video_only))
