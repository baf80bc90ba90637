# demo/kinetics_sounds_mid.py in the visual-only setting (V): the visual
# CNN and the visual Transformer; the audio stream is neither decoded nor
# modelled.  Pooled feature: the mean of the visual Transformer's outputs
# (the paper: its BOS summary).
_base_ = ['./kinetics_sounds_mid.py']

# y_mean, not y_summary: see kinetics_sounds_mid.py
model = dict(modality='visual', feature='y_mean')
train_dataloader = dict(dataset=dict(dataset=dict(
    pipeline={{_base_.train_pipeline_visual}})))
val_dataloader = dict(dataset=dict(dataset=dict(
    pipeline={{_base_.val_pipeline_visual}})))
test_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline_visual}}))
# Parts of the neck get no gradient in this setting (the other modality's
# embeddings, the multimodal embeddings): let DDP skip them.
find_unused_parameters = True
