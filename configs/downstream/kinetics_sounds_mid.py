# Kinetics-Sounds fine-tuning of the whole pretrained AVBERT (paper, Table
# 2(c), A.3, A.4), multimodal setting (M): both CNNs and the three
# Transformers (mid fusion) with a 2-layer MLP classifier on the multimodal
# summary outputs; 10 one-second clips per video, 24K iterations, global batch
# 32 (8 GPUs x 4), learning rates 5e-3 (classifier, CNNs) / 1e-4 (orthogonal)
# / 1e-3 (rest).  Tested with 3 spatial crops, probabilities averaged.
#
#   python tools/train.py configs/downstream/kinetics_sounds_mid.py \
#       --cfg-options model.pretrained=work_dirs/k700_mid_part/iter_220000.pth
#   python tools/test.py configs/downstream/kinetics_sounds_mid.py \
#       work_dirs/kinetics_sounds_mid/best_acc_top1_iter_<n>.pth
#
# Visual-only (V) and audio-only (A) settings: kinetics_sounds_mid_visual.py
# and kinetics_sounds_mid_audio.py.
_base_ = [
    '../_base_/models/downstream_avclassifier.py',
    '../_base_/datasets/kinetics_sounds.py',
    '../_base_/schedules/downstream_kinetics_sounds_24k.py',
]

# The pretraining checkpoint (visual_backbone.*, audio_backbone.*, neck.* are
# loaded, the pretraining heads dropped); None trains from random weights.
pretrained = None
model = dict(num_classes=_base_.num_classes)
train_dataloader = dict(batch_size=4)
