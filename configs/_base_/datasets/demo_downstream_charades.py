# The Charades protocol on synthetic data for CPU runs: the layout of
# charades.py (Charades_v1_480/<id>.mp4, Charades_v1_{train,test}.csv) written
# by avtoolkit.data_prep.synthetic_layouts from the synthetic demo
# generator: 100 videos of 8 s at 160x128 pixels, 10 object classes (those of
# the pretraining demo) plus two time-stamped event classes ("loud event",
# "high-pitched event") = 12 classes, 30% of every class in the test CSV.
# Sequences in the demo clip format (demo_clip_format.py), spread over the
# video as in charades.py.
_base_ = ['./charades.py', './demo_clip_format.py']

data_root = 'data/demo_downstream/charades/'
video_prefix = data_root + 'Charades_v1_480'
ann_file_train = data_root + 'Charades_v1_train.csv'
ann_file_test = data_root + 'Charades_v1_test.csv'
num_classes = 12
synthetic_downstream = dict(
    out_dir=data_root, layout='charades', num_videos=100, seconds=8,
    num_classes=10, seed=0, height=128, width=160, fps=16,
    test_fraction=0.3, workers=2)

# Merged into charades.py's pipelines and datasets.
train_pipeline = _base_.demo_train_pipeline
val_pipeline = _base_.demo_val_pipeline
test_pipeline = _base_.demo_test_pipeline
dataset = dict(num_classes=num_classes, data_prefix=dict(video=video_prefix))
train_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=8, num_workers=1, dataset=dict(dataset=dict(
    dataset, ann_file=ann_file_train, pipeline=val_pipeline)))
test_dataloader = dict(batch_size=4, num_workers=1, dataset=dict(
    dataset, ann_file=ann_file_test, pipeline=test_pipeline))
