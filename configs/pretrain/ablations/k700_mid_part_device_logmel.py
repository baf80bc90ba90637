# k700_mid_part.py with the log-mel spectrograms computed on the GPU: the
# data workers ship each clip's 16 kHz mono waveform (inputs['audio'] (30,
# 16000) per sample) and AVDataPreprocessor computes the log-mel batched
# over B*30 clips with the code of LogMelSpectrogram (the same values,
# tests/models/test_device_log_mel.py), then normalises it.  This takes the
# STFT and the mel projection off the workers' CPUs.
#
# SpecAugment-style masking (AudioMask) works on log-mel, so it needs the
# host log-mel; this config drops the (disabled) mask with the audio steps.
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/models/avbert_mid_part_device_logmel.py',
    '../../_base_/datasets/k700_pretrain_shards.py',
    '../../_base_/schedules/avbert_pretrain_220k.py',
]

train_dataloader = dict(batch_size=4,
                        dataset=dict(pipeline=dict(audio=[])))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5_000, by_epoch=False,
                    max_keep_ckpts=5),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
