# ucf101_visual_ft.py on the official split 3 (training list 03, with the
# held-out validation part carved from it, and test list 03).
_base_ = ['./ucf101_visual_ft.py']

split = 3
split_lists = _base_.ucf101_lists[f'split{split}']
train_dataloader = dict(dataset=dict(dataset=dict(ann_file=split_lists.train)))
val_dataloader = dict(dataset=dict(dataset=dict(ann_file=split_lists.train)))
test_dataloader = dict(dataset=dict(ann_file=split_lists.test))
