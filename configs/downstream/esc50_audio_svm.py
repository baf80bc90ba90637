# ESC-50 with the frozen audio CNN of a pretrained AVBERT (paper, Sec. 3 and
# appendix A.3/A.4; Table 2b): per-clip features of the audio ResNet-50
# (globally pooled res5 output, 1024-d) of ten 2-s clips per recording, a
# multi-class one-vs-all linear SVM trained on the clips of four folds and
# tested on the fifth, clip scores averaged per recording; top-1 of the five
# folds and their mean +- std.
#
#   python tools/test.py configs/downstream/esc50_audio_svm.py \
#       work_dirs/k700_mid_part/iter_220000.pth [--compare-random]
#
# Only model.audio_backbone is built; its weights are read from the
# "audio_backbone." entries of the pretraining checkpoint.
_base_ = [
    '../_base_/models/avbert_mid_part_arch.py',
    '../_base_/datasets/esc50.py',
]
default_scope = 'avtoolkit'

# 40 clips of 128 x 440 per batch of 4 recordings: run the CNN on 20 at a time.
model = dict(audio_backbone=dict(clip_chunk_size=20))

protocol = dict(
    type='FrozenFeatureSVMProtocol',
    name='ESC-50',
    dataset=_base_.esc50_dataset,
    folds=_base_.folds,
    backbone='audio_backbone',
    modality='audio',
    feature='cnn',
    num_classes=_base_.num_classes,
    # The one-vs-all squared-hinge SVM is solved to convergence (L-BFGS);
    # C is chosen per test fold on one held-out training fold.
    C_grid=(0.001, 0.01, 0.1, 1.0),
    val_strategy='fold',
    svm=dict(loss='squared_hinge', standardize=True, max_iter=1000,
             # Mini-batch settings of the paper (38K iterations, batch 128,
             # learning rate 0.003); they take effect with the release's
             # multi-class hinge: --cfg-options protocol.svm.loss=multi_margin
             batch_size=128, lr=0.003, margin=0.1),
    svm_iters=38000,
    batch_size=4,
    num_workers=4,
    cache=True,
    dump_scores=True,
    compare_random=False,
    seed=0)
