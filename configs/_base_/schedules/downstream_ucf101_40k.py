# UCF101 fine-tuning (appendix A.4): 40K iterations, global batch 64, learning
# rate 0.02 for every parameter (CNN and linear classifier), AMSGrad AdamW,
# 6% warm-up then linear decay.  Best checkpoint by validation top-1.
_base_ = ['./downstream_common.py']

optim_wrapper = dict(optimizer=dict(lr=0.02))
train_cfg = dict(max_iters=40_000, val_interval=2_000)
default_hooks = dict(checkpoint=dict(save_best='acc/top1'))
