# ucf101_visual_ft.py on the official split 2 (training list 02, with the
# held-out validation part carved from it, and test list 02).
_base_ = ['./ucf101_visual_ft.py']

split = 2
train_dataloader = dict(dataset=dict(dataset=dict(
    ann_file=_base_.ucf101_lists.split2.train)))
val_dataloader = dict(dataset=dict(dataset=dict(
    ann_file=_base_.ucf101_lists.split2.train)))
test_dataloader = dict(dataset=dict(
    ann_file=_base_.ucf101_lists.split2.test))
