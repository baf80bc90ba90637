# AVBERT as in the paper (avbert_mid_part_arch.py) with its input
# normalisation (av_data_preprocessor.py): the model of the pretraining
# recipes, and the encoder of the fine-tuning models.
_base_ = ['./avbert_mid_part_arch.py', './av_data_preprocessor.py']

model = dict(data_preprocessor=_base_.av_data_preprocessor)
