# The Kinetics-Sounds protocol on synthetic data for CPU runs: the layout of
# kinetics_sounds.py (videos/<youtube_id>_<start>_<end>.mp4, train.csv,
# validate.csv, classes.txt) written by avtoolkit.data_prep.synthetic_layouts
# from the synthetic demo generator: 10 classes (those of the pretraining
# demo), 100 videos of 8 s at 160x128 pixels, 30% of every class in
# validate.csv (the test set).  Sequences in the demo clip format
# (demo_clip_format.py).
_base_ = ['./kinetics_sounds.py', './demo_clip_format.py']

data_root = 'data/demo_downstream/kinetics_sounds/'
video_prefix = data_root + 'videos'
ann_file_train = data_root + 'train.csv'
ann_file_test = data_root + 'validate.csv'
class_file = data_root + 'classes.txt'
num_classes = 10
synthetic_downstream = dict(
    out_dir=data_root, layout='kinetics_sounds', num_videos=100, seconds=8,
    num_classes=num_classes, seed=0, height=128, width=160, fps=16,
    test_fraction=0.3, workers=2)

# Merged into kinetics_sounds.py's pipelines and datasets.
train_pipeline = _base_.demo_train_pipeline
val_pipeline = _base_.demo_val_pipeline
test_pipeline = _base_.demo_test_pipeline
dataset = dict(classes=class_file, data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=val_pipeline)))
test_dataloader = dict(batch_size=4, num_workers=1, dataset=dict(
    dataset, ann_file=ann_file_test, pipeline=test_pipeline))
