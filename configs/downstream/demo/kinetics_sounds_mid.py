# The Kinetics-Sounds protocol (kinetics_sounds_mid.py) at demo scale on a
# CPU: the small AVBERT of the pretraining demo + a 2-layer MLP classifier,
# fine-tuned on synthetic data in the Kinetics-Sounds layout (generated into
# data/demo_downstream/kinetics_sounds/ first if absent), selected on the
# held-out part of train.csv, tested on validate.csv with 3 crops.
#
#   python tools/train.py configs/downstream/demo/kinetics_sounds_mid.py \
#       --cfg-options model.pretrained=work_dirs/demo_mid_part/iter_300.pth
#   python tools/test.py configs/downstream/demo/kinetics_sounds_mid.py \
#       work_dirs/kinetics_sounds_mid/best_acc_top1_iter_<n>.pth
#
# V and A settings: kinetics_sounds_mid_visual.py and
# kinetics_sounds_mid_audio.py.
_base_ = [
    '../../_base_/models/downstream_avclassifier_tiny.py',
    '../../_base_/datasets/demo_downstream_kinetics_sounds.py',
    '../../_base_/schedules/downstream_kinetics_sounds_24k.py',
]

pretrained = None
# feature: the mean of the multimodal outputs, not the paper's BOS summary:
# the demo pretraining trains the BOS outputs only through CPP, which stays
# near chance at its budget, and they come out almost the same for every
# video (docs/benchmarks.md).
model = dict(num_classes=_base_.num_classes, feature='z_mean')
# 200 iterations of batch 8.  The classifier keeps the paper's rate (5e-3);
# the encoder runs at a tenth of the paper's rates (CNNs 5e-4, Transformers
# 1e-4, orthogonal parameters 1e-5): at the paper's CNN rate the first
# iterations move the small CNNs' weights further than the 300 iterations of
# the demo pretraining did.  Test top-1 rose from 0.40 to 0.70 (pretrained)
# and from 0.53 to 0.77 (random weights); see docs/benchmarks.md.
optim_wrapper = dict(
    optimizer=dict(lr=1e-4),
    paramwise_cfg=dict(groups=[
        _base_.orthogonal_group,
        dict(name='classifier', keys=[r'^head\.'], lr_mult=50.0),
        dict(name='cnn', keys=[r'^(visual|audio)_backbone\.'], lr_mult=5.0),
    ]))
train_cfg = dict(max_iters=200, val_interval=50)
default_hooks = dict(
    checkpoint=dict(interval=50, max_keep_ckpts=1), logger=dict(interval=10))
randomness = dict(seed=0)
