# The Charades protocol (charades_mid.py) at demo scale on a CPU: the
# small AVBERT of the pretraining demo + a 2-layer MLP classifier trained with
# binary cross-entropy on synthetic data in the Charades layout (generated into
# data/demo_downstream/charades/ first if absent), selected on the held-out
# part of Charades_v1_train.csv, tested on Charades_v1_test.csv with 3 crops
# (probabilities max-pooled, mAP).
#
#   python tools/train.py configs/downstream/demo/charades_mid.py \
#       --cfg-options model.pretrained=work_dirs/demo_mid_part/iter_300.pth
#   python tools/test.py configs/downstream/demo/charades_mid.py \
#       work_dirs/charades_mid/best_multilabel_mAP_iter_<n>.pth
#
# V and A settings: charades_mid_visual.py, charades_mid_audio.py.
_base_ = [
    '../../_base_/models/downstream_avclassifier_tiny.py',
    '../../_base_/datasets/demo_downstream_charades.py',
    '../../_base_/schedules/downstream_charades_40k.py',
]

pretrained = None
# feature: the mean of the multimodal outputs, not the paper's BOS summary
# (see demo/kinetics_sounds_mid.py).
model = dict(num_classes=_base_.num_classes, feature='z_mean',
             multi_label=True, view_reduce='max')
# The paper's learning rates (groups of the schedule), 200 iterations of
# batch 8.
train_cfg = dict(max_iters=200, val_interval=50)
default_hooks = dict(
    checkpoint=dict(interval=50, max_keep_ckpts=1), logger=dict(interval=10))
randomness = dict(seed=0)
