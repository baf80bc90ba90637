# The reference point of the paper's ablations (appendix A.4): the paper model
# pretrained with a global batch of 4 for 80K iterations (one GPU x 4).  Every
# ablation config in this folder is a delta of this file.
_base_ = ['../k700_mid_part.py']

train_cfg = dict(max_iters=80_000)
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(accumulative_counts=1)
