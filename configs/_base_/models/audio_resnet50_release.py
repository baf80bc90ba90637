# Audio CNN of the authors' release (a selectable alternative to the paper's):
# the same width-32 bottleneck ResNet-50 (outputs 128/256/512/1024), but with a
# separable stem (9x1 convolution over frequency, then 1x9 over time, each with
# BN and ReLU, stride 1, no pooling), stride 2 in the first block of every
# stage (the release's AUDIO_RESNET.STRIDES = [2, 2, 2, 2]), on 80 mel bins x
# 128 frames.
# Per clip: (1, 80, 128) -> (1024, 5, 8) -> pooled 1024
# -> Linear + LayerNorm -> 768.
# Input of the encoder: (B, T, 1, n_mels, T_a); output: (B, T, 768).
_base_ = ['./audio_resnet50.py']

audio_backbone = dict(
    cnn=dict(stem_type='separable', strides=(2, 2, 2, 2)))
