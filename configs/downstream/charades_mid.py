# Charades fine-tuning of the whole pretrained AVBERT (paper, Table 2(c), A.3,
# A.4), multimodal setting (M): both CNNs and the three Transformers with a
# 2-layer MLP classifier trained with per-class binary cross-entropy on 30
# one-second clips per video; 40K iterations, global batch 8 (8 GPUs x 1),
# learning rates 1e-3 (classifier, CNNs) / 1e-5 (orthogonal) / 1e-4 (rest).
# Tested with 3 spatial crops, probabilities max-pooled; metric mAP.
#
#   python tools/train.py configs/downstream/charades_mid.py \
#       --cfg-options model.pretrained=work_dirs/k700_mid_part/iter_220000.pth
#   python tools/test.py configs/downstream/charades_mid.py \
#       work_dirs/charades_mid/best_multilabel_mAP_iter_<n>.pth
#
# Visual-only (V) and audio-only (A) settings: charades_mid_visual.py and
# charades_mid_audio.py.
_base_ = [
    '../_base_/models/downstream_avclassifier.py',
    '../_base_/datasets/charades.py',
    '../_base_/schedules/downstream_charades_40k.py',
]

# The pretraining checkpoint (visual_backbone.*, audio_backbone.*, neck.* are
# loaded, the pretraining heads dropped); None trains from random weights.
pretrained = None
# Multi-label: per-class binary cross-entropy; views max-pooled.
model = dict(num_classes=_base_.num_classes, multi_label=True,
             view_reduce='max')
train_dataloader = dict(batch_size=1)
