# ESC-50 (Piczak, 2015): 2,000 five-second recordings of 50 environmental
# sound classes in five official folds of 400 (recordings cut from the same
# source file share a fold).  Official download, unpacked under data/:
#
#   data/ESC-50-master/
#     audio/1-100038-A-14.wav ...     44.1 kHz mono wav, 5 s
#     meta/esc50.csv                  filename,fold,target,category,esc10,...
#
# Test-time views (paper, appendix A.3): ten equally spaced two-second clips
# of every recording, each a 128-bin log-mel spectrogram of 440 frames (the
# 220 frames per second of pretraining: 16 kHz, 25 ms window, hop 73; a
# window of 32047 samples, 2.9 ms longer than the clip and centred on it,
# gives exactly 440 frames).
#
# Per recording: inputs['audio'] float32 (10, 1, 128, 440).
_base_ = ['./av_clip_format.py']

data_root = 'data/ESC-50-master/'
ann_file = 'meta/esc50.csv'
audio_prefix = 'audio'
num_classes = 50
folds = (1, 2, 3, 4, 5)

# Ten 2-s clips spread evenly over the recording; the log-mel step of
# av_clip_format.py over 2 s.
esc50_pipeline = dict(
    type='AVSequencePipeline', modalities=('audio', ),
    clips=dict(type='AVSampleClips', num_clips=10, clip_duration=2.0,
               frames_per_clip=0, mode='uniform', short_policy='loop'),
    decode=dict(type='AVDecode', sample_rate=_base_.av_decode.sample_rate,
                audio_samples=32047),
    audio=[dict(_base_.av_audio_steps[0], num_frames=440),
           _base_.av_audio_steps[1]])

# Every recording of every fold; the protocol splits by the `fold` column.
esc50_dataset = dict(
    type='ESC50Dataset',
    data_root=data_root,
    ann_file=ann_file,
    data_prefix=dict(video=audio_prefix),
    pipeline=esc50_pipeline,
    test_mode=True)
