# Kinetics-Sounds fine-tuning (appendix A.4): 24K iterations, global batch 32,
# learning rate 5e-3 for the classifier and the CNNs, 1e-4 for the orthogonal
# parameters (sigma_generator of the factorised Transformer maps) and 1e-3 for
# the rest (Transformers, embeddings).  The CNN group holds the whole clip
# encoders (CNN and its Linear + LayerNorm projection to D).  Best checkpoint
# by validation top-1.
_base_ = ['./downstream_common.py']

optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(groups=[
        dict(name='orthogonal', keys=[r'sigma_generator'], lr_mult=0.1),
        dict(name='classifier_cnn',
             keys=[r'^head\.', r'^(visual|audio)_backbone\.'], lr_mult=5.0),
    ]))
train_cfg = dict(max_iters=24_000, val_interval=2_000)
default_hooks = dict(checkpoint=dict(save_best='acc/top1'))
