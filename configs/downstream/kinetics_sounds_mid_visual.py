# kinetics_sounds_mid.py in the visual-only setting (V): the visual CNN and the
# visual Transformer; the audio stream is neither decoded nor modelled.
# Pooled feature: the summary (BOS) output of the visual Transformer.
_base_ = ['./kinetics_sounds_mid.py']

model = dict(modality='visual')
pipeline_setting = dict(modalities=('video', ))
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=pipeline_setting)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=pipeline_setting)))
test_dataloader = dict(dataset=dict(pipeline=pipeline_setting))
# Parts of the neck get no gradient in this setting (the other modality's
# embeddings, the multimodal embeddings): let DDP skip them.
find_unused_parameters = True
