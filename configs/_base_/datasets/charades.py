# Charades (official download, see docs/downstream.md):
#   data/charades/Charades_v1_480/<id>.mp4
#   data/charades/Charades_v1_train.csv, Charades_v1_test.csv
#       (id,...,actions,length; actions = "c092 11.90 21.20;c147 0.00 12.60")
# Multi-label over 157 classes: the label of a video is the set of classes of
# its actions (CharadesDataset gives one-hot vectors).
#
# Splits: Charades_v1_test.csv is the test set; `val_fraction` of
# Charades_v1_train.csv (chosen with `holdout_seed`) is held out for model
# selection (HoldOutSplit; random, not stratified, as videos have several
# labels).
#
# One sample: T = 30 one-second clips spread evenly over the whole video
# (about 30 s on average), each with F = 32 frames (T_s = 4, T_f = 32) scaled
# to a 128-pixel short side and a 128-bin log-mel spectrogram of 220 frames.
#   train: clips evenly spread with synchronised jitter, 112x112 crop, flip;
#   val:   evenly spread, centre 128x128 crop;
#   test:  evenly spread, 3 crops of 128x128 (3 views), probabilities
#          max-pooled (A.3); metric: mAP over classes.
# Settings: the pipelines read video and audio (M); the V and A configs set
# their `modalities` to ('video',) or ('audio',).
data_root = 'data/charades/'
video_prefix = data_root + 'Charades_v1_480'
ann_file_train = data_root + 'Charades_v1_train.csv'
ann_file_test = data_root + 'Charades_v1_test.csv'
num_classes = 157
val_fraction = 0.1
holdout_seed = 0

num_clips = 30
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
                   frames_per_clip=frames_per_clip, mode='uniform',
                   jitter=temporal_jitter, short_policy='loop')
test_clips = dict(type='AVSampleClips', num_clips=num_clips,
                  clip_duration=clip_duration,
                  frames_per_clip=frames_per_clip, mode='uniform',
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

dataset_type = 'CharadesDataset'
train_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='train',
        val_fraction=val_fraction,
        seed=holdout_seed,
        stratify=False,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file_train,
            num_classes=num_classes,
            data_prefix=dict(video=video_prefix),
            pipeline=train_pipeline,
            bad_input=dict(mode='skip'))))
val_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='HoldOutSplit',
        part='val',
        val_fraction=val_fraction,
        seed=holdout_seed,
        stratify=False,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file_train,
            num_classes=num_classes,
            data_prefix=dict(video=video_prefix),
            pipeline=val_pipeline,
            test_mode=True)))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        num_classes=num_classes,
        data_prefix=dict(video=video_prefix),
        pipeline=test_pipeline,
        test_mode=True))

# The model max-pools the view probabilities of a sample; labels are one-hot.
val_evaluator = dict(type='MultiLabelMAP', aggregate='max',
                     label_format='multi_hot')
test_evaluator = val_evaluator
