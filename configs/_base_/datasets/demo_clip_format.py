# The clip format of the CPU demos (tools/data/make_synthetic_av.py and
# avtoolkit.datasets.synthetic_downstream): T = 8 one-second clips of F = 8
# frames scaled to a 40-pixel short side, 32x32 training crops, 40x40 test
# crops, and 64-bin log-mel spectrograms of 101 frames (16 kHz, hop 160).
#
# demo_*_pipeline are the parts of av_clip_format.py's pipelines that the
# demo changes: a demo dataset base inherits this file next to its
# full-scale dataset base and merges them into that base's pipelines, which
# keep their type, modalities and clip spread (mode, jitter, short policy).
demo_clips = dict(type='AVSampleClips', num_clips=8, clip_duration=1.0,
                  frames_per_clip=8)
demo_decode = dict(type='AVDecode', short_side=40, sample_rate=16000)
demo_video_train_steps = [
    dict(type='RandomCrop', size=32),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
demo_video_val_steps = [
    dict(type='CenterCrop', crop_size=40),
    dict(type='FormatShape', input_format='NCTHW'),
]
demo_video_test_steps = [
    dict(type='ThreeCrop', crop_size=40),
    dict(type='FormatShape', input_format='NCTHW'),
]
demo_audio_steps = [
    dict(type='LogMelSpectrogram', sample_rate=16000, n_mels=64, n_fft=512,
         win_length=400, hop_length=160, num_frames=101),
    dict(type='AudioNormalize', mean=-4.0, std=4.0),
]

demo_train_pipeline = dict(clips=demo_clips, decode=demo_decode,
                           video=demo_video_train_steps,
                           audio=demo_audio_steps)
demo_val_pipeline = dict(demo_train_pipeline, video=demo_video_val_steps)
demo_test_pipeline = dict(demo_train_pipeline, video=demo_video_test_steps)
