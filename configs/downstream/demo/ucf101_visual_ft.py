# The UCF101 protocol (ucf101_visual_ft.py) at demo scale on a CPU: the
# narrow SlowFast of the pretraining demo + a linear classifier, fine-tuned on
# synthetic data in the UCF101 layout (generated into
# data/demo_downstream/ucf101/ first if absent), selected on the held-out part
# of trainlist01, tested on testlist01 with 10 clips x 3 crops.
#
#   python tools/train.py configs/downstream/demo/ucf101_visual_ft.py \
#       --cfg-options model.pretrained=work_dirs/demo_mid_part/iter_300.pth
#   python tools/test.py configs/downstream/demo/ucf101_visual_ft.py \
#       work_dirs/ucf101_visual_ft/best_acc_top1_iter_<n>.pth
_base_ = [
    '../../_base_/models/downstream_visual_tiny.py',
    '../../_base_/datasets/demo_downstream_ucf101.py',
    '../../_base_/schedules/downstream_ucf101_40k.py',
]

pretrained = None
model = dict(num_classes=_base_.num_classes)
# The paper's schedule shortened to 200 iterations of batch 8, with a
# learning rate 20x below the paper's 0.02 (for the small batch; not tuned).
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_iters=200, val_interval=50)
default_hooks = dict(
    checkpoint=dict(interval=50, max_keep_ckpts=1), logger=dict(interval=10))
randomness = dict(seed=0)
