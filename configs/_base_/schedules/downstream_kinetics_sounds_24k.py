# Kinetics-Sounds fine-tuning (appendix A.4): 24K iterations, global batch 32,
# learning rate 5e-3 for the classifier and the CNNs, 1e-4 for the orthogonal
# parameters (sigma_generator of the factorised Transformer maps) and 1e-3 for
# the rest (Transformers, embeddings).  Best checkpoint by validation top-1.
_base_ = ['./downstream_common.py']

optim_wrapper = dict(paramwise_cfg=dict(groups=[
    _base_.orthogonal_group, dict(_base_.classifier_cnn_group, lr_mult=5.0)
]))
train_cfg = dict(max_iters=24_000)
default_hooks = dict(checkpoint=dict(save_best='acc/top1'))
