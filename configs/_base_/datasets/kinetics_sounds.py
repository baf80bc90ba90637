# Kinetics-Sounds (the Kinetics classes with audible sound events; 32 classes
# in the paper), from a Kinetics download (see docs/downstream.md):
#   data/kinetics_sounds/videos/<youtube_id>_<start:06d>_<end:06d>.mp4
#   data/kinetics_sounds/train.csv, validate.csv
#       (Kinetics CSVs: label,youtube_id,time_start,time_end,split; rows of
#        other classes are dropped by KineticsSoundsDataset)
#   data/kinetics_sounds/classes.txt   (the class names, one per line)
# Videos in class folders: set filename_tmpl='{label}/{youtube_id}_...' on the
# datasets (see KineticsSoundsDataset).
#
# Splits: Kinetics' validation videos are the test set; `val_fraction` of
# every class of train.csv (chosen with `holdout_seed`) is held out for model
# selection (HoldOutSplit).
#
# One sample: the T = 10 one-second clips of a 10-s video (repeated if
# shorter), each with F = 32 frames (T_s = 4, T_f = 32 for SlowFast) scaled
# to a 128-pixel short side and a 128-bin log-mel spectrogram of 220 frames
# (the pretraining clip format).
#   train: random position, synchronised jitter, 112x112 crop, flip;
#   val:   centred sequence, centre 128x128 crop;
#   test:  centred sequence, 3 crops of 128x128 (3 views), probabilities
#          averaged (A.3).
# Settings: the pipelines read video and audio (M); the V and A configs set
# their `modalities` to ('video',) or ('audio',) (an audio-only sample has
# one view).
data_root = 'data/kinetics_sounds/'
video_prefix = data_root + 'videos'
ann_file_train = data_root + 'train.csv'
ann_file_test = data_root + 'validate.csv'
class_file = data_root + 'classes.txt'
num_classes = 32
val_fraction = 0.1
holdout_seed = 0

num_clips = 10
clip_duration = 1.0
frames_per_clip = 32
short_side = 128
train_crop_size = 112
test_crop_size = 128
temporal_jitter = 0.1
sample_rate = 16000
n_mels = 128
mel_frames = 220
audio_mean = -4.0
audio_std = 4.0
video_mean = [123.675, 116.28, 103.53]
video_std = [58.395, 57.12, 57.375]

train_clips = dict(type='AVSampleClips', num_clips=num_clips,
                   clip_duration=clip_duration,
                   frames_per_clip=frames_per_clip, mode='random',
                   jitter=temporal_jitter, short_policy='loop')
test_clips = dict(type='AVSampleClips', num_clips=num_clips,
                  clip_duration=clip_duration,
                  frames_per_clip=frames_per_clip, mode='center',
                  short_policy='loop')
decode = dict(type='AVDecode', short_side=short_side,
              sample_rate=sample_rate)
video_train_steps = [
    dict(type='RandomCrop', size=train_crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
]
video_val_steps = [
    dict(type='CenterCrop', crop_size=test_crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
]
video_test_steps = [
    dict(type='ThreeCrop', crop_size=test_crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
]
audio_steps = [
    dict(type='LogMelSpectrogram', sample_rate=sample_rate, n_mels=n_mels,
         n_fft=1024, win_length=400, hop_length=73, num_frames=mel_frames),
    dict(type='AudioNormalize', mean=audio_mean, std=audio_std),
]
# One AVSequencePipeline per split; the V and A configs switch its
# `modalities` (the video or audio steps are then left out).
train_pipeline = dict(type='AVSequencePipeline', modalities=('video', 'audio'),
                      clips=train_clips, decode=decode,
                      video=video_train_steps, audio=audio_steps)
val_pipeline = dict(train_pipeline, clips=test_clips, video=video_val_steps)
test_pipeline = dict(train_pipeline, clips=test_clips, video=video_test_steps)

av_data_preprocessor = dict(
    type='AVDataPreprocessor', video_mean=video_mean, video_std=video_std)

dataset_type = 'KineticsSoundsDataset'
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='train',
        val_fraction=val_fraction,
        seed=holdout_seed,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file_train,
            classes=class_file,
            data_prefix=dict(video=video_prefix),
            pipeline=train_pipeline,
            bad_input=dict(mode='skip'))))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='val',
        val_fraction=val_fraction,
        seed=holdout_seed,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file_train,
            classes=class_file,
            data_prefix=dict(video=video_prefix),
            pipeline=val_pipeline,
            test_mode=True)))
test_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        classes=class_file,
        data_prefix=dict(video=video_prefix),
        pipeline=test_pipeline,
        test_mode=True))

# The model averages the probabilities of the views of a sample.
val_evaluator = dict(type='MultiViewAccuracy', topk=(1, 5),
                     aggregate='mean_score')
test_evaluator = val_evaluator
