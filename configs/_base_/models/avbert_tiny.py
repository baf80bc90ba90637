# The small AVBERT of avbert_tiny_arch.py (CPU demos and tests) with the
# input normalisation of av_data_preprocessor.py: the model of the demo
# pretraining, and the encoder of the demo fine-tuning models.
_base_ = ['./avbert_tiny_arch.py', './av_data_preprocessor.py']

model = dict(data_preprocessor=_base_.av_data_preprocessor)
