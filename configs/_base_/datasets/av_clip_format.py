# The audio-visual clip format of the paper (appendix A), shared by the
# full-scale dataset bases: T = 30 one-second clips, each F = 32 frames
# (T_s = 4, T_f = 32 for SlowFast) scaled to a 128-pixel short side while
# decoding, 112x112 training crops and 128x128 test crops, and a 128-bin
# log-mel spectrogram of 220 frames (16 kHz, 25 ms window, hop 73).  Frames
# stay uint8: the model's data preprocessor normalises them on the device.
#
# One AVSequencePipeline per split (AVInit -> clips -> decode -> video steps
# -> audio steps -> PackAVInputs):
#   train: random position, synchronised audio-visual jitter, crop, flip;
#   val:   centred sequence, centre crop;
#   test:  centred sequence, 3 crops (3 views).
# A dataset base derives its pipelines from these, changing a part:
#   train_pipeline = dict(_base_.av_train_pipeline,
#                         clips=dict(_base_.av_train_clips, num_clips=10))
# The names start with av_ (those of demo_clip_format.py with demo_), so that
# a base can inherit both (mmengine refuses two bases that define one name).
av_clips = dict(type='AVSampleClips', num_clips=30, clip_duration=1.0,
                frames_per_clip=32, short_policy='loop')
# jitter in seconds; the paper gives no value
av_train_clips = dict(av_clips, mode='random', jitter=0.1)
av_test_clips = dict(av_clips, mode='center')
av_decode = dict(type='AVDecode', short_side=128, sample_rate=16000)
av_video_train_steps = [
    dict(type='RandomCrop', size=112),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
av_video_val_steps = [
    dict(type='CenterCrop', crop_size=128),
    dict(type='FormatShape', input_format='NCTHW'),
]
av_video_test_steps = [
    dict(type='ThreeCrop', crop_size=128),
    dict(type='FormatShape', input_format='NCTHW'),
]
# Rough log-mel statistics of natural recordings; recompute on your data.
av_audio_steps = [
    dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=128, n_fft=1024,
         win_length=400, hop_length=73, num_frames=220),
    dict(type='AudioNormalize', mean=-4.0, std=4.0),
]

av_train_pipeline = dict(
    type='AVSequencePipeline', modalities=('video', 'audio'),
    clips=av_train_clips, decode=av_decode, video=av_video_train_steps,
    audio=av_audio_steps)
av_val_pipeline = dict(av_train_pipeline, clips=av_test_clips,
                       video=av_video_val_steps)
av_test_pipeline = dict(av_train_pipeline, clips=av_test_clips,
                        video=av_video_test_steps)
