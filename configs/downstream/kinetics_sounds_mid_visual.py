# kinetics_sounds_mid.py in the visual-only setting (V): the visual CNN and the
# visual Transformer; the audio stream is neither decoded nor modelled.
# Pooled feature: the summary (BOS) output of the visual Transformer.
_base_ = ['./kinetics_sounds_mid.py', '../_base_/single_modality.py']

model = dict(modality='visual')
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.video_only)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=_base_.video_only)))
test_dataloader = dict(dataset=dict(pipeline=_base_.video_only))
