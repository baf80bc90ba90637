# demo/kinetics_sounds_mid.py in the audio-only setting (A): the audio CNN
# and the audio Transformer; the video stream is neither decoded nor
# modelled (one view per video at test time).  Pooled feature: the
# mean of the audio Transformer's outputs (the paper: its BOS summary).
_base_ = ['./kinetics_sounds_mid.py', '../../_base_/single_modality.py']

# y_mean, not y_summary: see kinetics_sounds_mid.py
model = dict(modality='audio', feature='y_mean')
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.audio_only)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.audio_only)))
test_dataloader = dict(dataset=dict(pipeline=_base_.audio_only))
