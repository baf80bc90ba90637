# charades_mid.py in the audio-only setting (A): the audio CNN and the
# audio Transformer; the video stream is neither decoded nor modelled (one
# view per video at test time).  Pooled feature: the summary (BOS) output of
# the audio Transformer.
_base_ = ['./charades_mid.py', '../_base_/single_modality.py']

model = dict(modality='audio')
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.audio_only)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.audio_only)))
test_dataloader = dict(dataset=dict(pipeline=_base_.audio_only))
