# Charades fine-tuning (appendix A.4): 40K iterations, global batch 8,
# learning rate 1e-3 for the classifier and the CNNs, 1e-5 for the orthogonal
# parameters (sigma_generator) and 1e-4 for the rest.  The CNN group holds the
# whole clip encoders (CNN and its projection to D).  Best checkpoint by
# validation mAP.
_base_ = ['./downstream_common.py']

optim_wrapper = dict(
    optimizer=dict(lr=1e-4),
    paramwise_cfg=dict(groups=[
        dict(name='orthogonal', keys=[r'sigma_generator'], lr_mult=0.1),
        dict(name='classifier_cnn',
             keys=[r'^head\.', r'^(visual|audio)_backbone\.'], lr_mult=10.0),
    ]))
train_cfg = dict(max_iters=40_000, val_interval=2_000)
default_hooks = dict(checkpoint=dict(save_best='multilabel/mAP'))
