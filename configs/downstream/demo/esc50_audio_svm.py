# The ESC-50 protocol on the CPU demo: the audio CNN of the tiny AVBERT
# pretrained by configs/pretrain/demo_mid_part.py, on synthetic recordings in
# the ESC-50 layout (tools/data/make_synthetic_downstream.py), compared with
# the same architecture's random initial weights.
#
#   python tools/train.py configs/pretrain/demo_mid_part.py
#   python tools/test.py configs/downstream/demo/esc50_audio_svm.py
#   (evaluates load_from = work_dirs/demo_mid_part/iter_300.pth)
#
# The tiny audio CNN (64 mel bins x 101 frames per 1-s clip in pretraining)
# is fully convolutional with global pooling, so it takes the 2-s clips of
# the protocol as 64 x 201 frames (same 10 ms hop as in pretraining).
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/models/avbert_tiny_arch.py',
    '../../_base_/datasets/esc50.py',
    '../../_base_/datasets/demo_clip_format.py',
]

data_root = 'data/demo_downstream/esc50/'
# Written by tools/test.py before the protocol runs, if absent: 200 clips of
# 5 s over the 10 classes of the pretraining demo, 4 per class in each of the
# 5 folds (see docs/downstream.md).
synthetic_downstream = dict(
    out_dir=data_root, layout='esc50', num_videos=200, seconds=5,
    num_classes=10, seed=0, sample_rate=16000, workers=2)
work_dir = 'work_dirs/esc50_audio_svm_demo'
# The checkpoint tools/test.py evaluates when none is given.
load_from = 'work_dirs/demo_mid_part/iter_300.pth'

# esc50.py's ten 2-s clips, read with the log-mel step of the demo clip
# format (201 frames over 2 s), without esc50.py's fixed sample count.
demo_esc50_pipeline = dict(
    _base_.esc50_pipeline,
    decode=dict(type='AVDecode', sample_rate=16000),
    audio=[dict(_base_.demo_audio_steps[0], num_frames=201),
           _base_.demo_audio_steps[1]])

protocol = dict(
    type='FrozenFeatureSVMProtocol',
    name='ESC-50 layout, synthetic demo',
    dataset=dict(_base_.esc50_dataset, data_root=data_root,
                 pipeline=demo_esc50_pipeline),
    folds=_base_.folds,
    backbone='audio_backbone',
    modality='audio',
    feature='cnn',
    C_grid=(0.01, 0.1, 1.0),
    val_strategy='fold',
    svm=dict(loss='squared_hinge', standardize=True, max_iter=500),
    batch_size=8,
    num_workers=1,
    cache=True,
    dump_scores=True,
    # The demo's point: pretrained features against random ones.
    compare_random=True,
    seed=0)
