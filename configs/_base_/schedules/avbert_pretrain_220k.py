# Pretraining optimisation of the paper (appendix A.4): the optimiser and
# schedule of adamw_warmup_linear.py with learning rate 1e-4 (1e-5 for the
# orthogonal parameters), 220K iterations.
#
# The paper used 64 GPUs x 4 = 256 samples per step.  To keep the recipe on
# other hardware, keep the product at 256, e.g. 8 GPUs x 4 x
# accumulative_counts=8, or 32 GPUs x 8 x 1.
_base_ = ['./adamw_warmup_linear.py']

train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=220_000,
                 val_interval=10_000)
val_cfg = None
test_cfg = None
