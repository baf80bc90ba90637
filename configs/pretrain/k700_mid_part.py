# The paper's pretraining recipe (Sec. 3, appendix A.4): the AVBERT model with
# mid fusion and part sharing, CANS-Similar, MEP + CPP, on 30-s sequences of
# Kinetics-700 from shards, global batch 256, 220K iterations, AMSGrad AdamW.
#
# Global batch = GPUs x train_dataloader.batch_size x accumulative_counts:
# 64 x 4 x 1 as in the paper.  On 8 GPUs keep the recipe with
#   --cfg-options optim_wrapper.accumulative_counts=8
# (the schedule counts optimizer steps, so max_iters stays 220K).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/avbert_mid_part.py',
    '../_base_/datasets/k700_pretrain_shards.py',
    '../_base_/schedules/avbert_pretrain_220k.py',
]

train_dataloader = dict(batch_size=4)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5_000, by_epoch=False,
                    max_keep_ckpts=5),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)

# Memory and speed knobs (figures in docs/benchmarks.md), off by default:
# - recompute the CNNs in backward, optionally a chunk of clips at a time
#   (chunks change the BatchNorm statistics):
#     --cfg-options model.visual_backbone.with_cp=True \
#                   model.audio_backbone.with_cp=True
# - torch.compile through mmengine's Runner (long first iteration):
#     --cfg-options compile.backend=inductor
# - bf16 / fp16 autocast: tools/train.py --amp
