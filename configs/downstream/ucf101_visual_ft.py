# UCF101 fine-tuning of the pretrained visual CNN (paper, Table 2(a), A.3,
# A.4): SlowFast-R50 + linear classifier trained end to end on 64-frame clips,
# 40K iterations, global batch 64 (8 GPUs x 8), learning rate 0.02, AMSGrad
# AdamW, 6% warm-up then linear decay.  Tested with 10 clips x 3 crops.
#
#   python tools/train.py configs/downstream/ucf101_visual_ft.py \
#       --cfg-options model.pretrained=work_dirs/k700_mid_part/iter_220000.pth
#   python tools/test.py configs/downstream/ucf101_visual_ft.py \
#       work_dirs/ucf101_visual_ft/best_acc_top1_iter_<n>.pth
#
# Split 1 by default.  Splits 2 and 3: ucf101_visual_ft_split2.py and
# ucf101_visual_ft_split3.py, or override the three lists (L =
# data/ucf101/ucfTrainTestlist):
#   --cfg-options train_dataloader.dataset.dataset.ann_file=L/trainlist02.txt \
#       val_dataloader.dataset.dataset.ann_file=L/trainlist02.txt \
#       test_dataloader.dataset.ann_file=L/testlist02.txt
# The paper reports the mean accuracy over the three splits.
_base_ = [
    '../_base_/models/downstream_visual_slowfast_r50.py',
    '../_base_/datasets/ucf101.py',
    '../_base_/schedules/downstream_ucf101_40k.py',
]

# The pretraining checkpoint (visual_backbone.cnn.* is loaded); None trains
# from random weights.  Set with --cfg-options model.pretrained=PATH.
pretrained = None
model = dict(num_classes=_base_.num_classes)
train_dataloader = dict(batch_size=8)
