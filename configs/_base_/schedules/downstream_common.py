# Parts shared by the fine-tuning schedules (paper, appendix A.4): the
# optimiser and schedule of adamw_warmup_linear.py, iteration-based training
# with periodic validation on the held-out part of the training list.  The
# recipes set the learning rates, the parameter groups, the length and the
# metric that selects the best checkpoint.
#
# The runtime settings (default scope avtoolkit, hooks) come from
# default_runtime.py, whose checkpoint and logger hooks are adapted here.
_base_ = ['../default_runtime.py', './adamw_warmup_linear.py']

optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(groups=[]))
# The recipes' group of the classifier and the CNNs: the whole clip encoders
# (CNN and its projection to D), at lr_mult times the base rate.
classifier_cnn_group = dict(
    name='classifier_cnn', keys=[r'^head\.', r'^(visual|audio)_backbone\.'])

train_cfg = dict(type='IterBasedTrainLoop', max_iters=40_000,
                 val_interval=2_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# Model selection: the checkpoint with the best validation metric (on the part
# carved out of the training list, never the test split) is kept as
# best_<metric>_iter_<n>.pth; recipes set save_best to their metric.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2_000, by_epoch=False,
                    max_keep_ckpts=2, save_best='auto', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
