# demo/charades_mid.py in the visual-only setting (V): the visual
# CNN and the visual Transformer; the audio stream is neither decoded nor
# modelled.  Pooled feature: the mean of the visual Transformer's outputs
# (the paper: its BOS summary).
_base_ = ['./charades_mid.py']

# y_mean, not y_summary: see charades_mid.py
model = dict(modality='visual', feature='y_mean')
pipeline_setting = dict(modalities=('video', ))
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=pipeline_setting)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=pipeline_setting)))
test_dataloader = dict(dataset=dict(pipeline=pipeline_setting))
# Parts of the neck get no gradient in this setting (the other modality's
# embeddings, the multimodal embeddings): let DDP skip them.
find_unused_parameters = True
