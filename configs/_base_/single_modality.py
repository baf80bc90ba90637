# The visual-only (V) and audio-only (A) settings of the fine-tuning configs.
# Their datasets read one stream: a V or A config merges `video_only` or
# `audio_only` into the AVSequencePipeline of each of its dataloaders, e.g.
#   train_dataloader = dict(dataset=dict(dataset=dict(
#       pipeline=_base_.audio_only)))
video_only = dict(modalities=('video', ))
audio_only = dict(modalities=('audio', ))
# Parts of the neck get no gradient in these settings (the other modality's
# embeddings, the multimodal embeddings): let DDP skip them.
find_unused_parameters = True
