# Charades fine-tuning (appendix A.4): 40K iterations, global batch 8,
# learning rate 1e-3 for the classifier and the CNNs, 1e-5 for the orthogonal
# parameters (sigma_generator) and 1e-4 for the rest.  Best checkpoint by
# validation mAP.
_base_ = ['./downstream_common.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(groups=[
    _base_.orthogonal_group, dict(_base_.classifier_cnn_group, lr_mult=10.0)
]))
train_cfg = dict(max_iters=40_000, val_interval=2_000)
default_hooks = dict(checkpoint=dict(save_best='multilabel/mAP'))
