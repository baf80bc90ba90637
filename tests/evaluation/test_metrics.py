"""Multi-view accuracy, multi-label mAP and fold summaries, by hand."""
import math

import pytest
import torch
from mmaction.structures import ActionDataSample
from mmengine.evaluator import Evaluator

from avtoolkit.evaluation import (MultiLabelMAP, MultiViewAccuracy,
                                  aggregate_views, summarize_folds, topk_hits)
from avtoolkit.registry import METRICS


def view(vid, score, label):
    return dict(filename=vid, pred_score=torch.tensor(score),
                gt_label=torch.tensor([label]) if isinstance(label, int)
                else torch.tensor(label))


def multi_hot_map(**kwargs):
    return MultiLabelMAP(label_format='multi_hot', **kwargs)


def run(metric, *batches):
    """Feed each list of data samples as one batch, then compute."""
    for batch in batches:
        metric.process(None, batch)
    return metric.compute_metrics(metric.results)


# ------------------------------------------------------------ accuracy
def test_views_of_one_video_pooled_across_batches():
    # A (label 0): view 1 alone says class 1, view 2 (next batch) class 0;
    #   mean [2, 1, 0] -> class 0: top-1 hit.
    # B (label 2): mean [0, 1.5, 0.5] -> class 1 first, class 2 second:
    #   top-1 miss, top-2 hit.
    # C (label 1): one view, classes 1 and 2 tie at 0.5 -> the tie counts
    #   against it: top-1 miss, top-2 hit.
    batch1 = [view('A', [1.0, 2.0, 0.0], 0), view('B', [0.0, 0.0, 1.0], 2)]
    batch2 = [view('B', [0.0, 3.0, 0.0], 2), view('A', [3.0, 0.0, 0.0], 0),
              view('C', [0.0, 0.5, 0.5], 1)]
    metric = MultiViewAccuracy(topk=(1, 2), aggregate='mean_score')
    out = run(metric, batch1, batch2)
    assert out['top1'] == pytest.approx(1 / 3)
    assert out['top2'] == pytest.approx(1.0)
    assert out['num_videos'] == 3

    # Scored view by view instead, A's first view would be a miss: the pooling
    # really combines samples from different batches.
    per_view = run(MultiViewAccuracy(topk=(1, ), aggregate='mean_score'),
                   [dict(v, filename=i) for i, v in
                    enumerate(batch1 + batch2)])
    assert per_view['top1'] == pytest.approx(2 / 5)   # A2 and B1 only


def test_aggregate_modes_differ_as_computed_by_hand():
    # D (label 1): mean [0, 1.95, 1.25] -> right; max [0, 2, 2.5] -> wrong.
    d = [view('D', [0.0, 2.0, 0.0], 1), view('D', [0.0, 1.9, 2.5], 1)]
    # E (label 0): logits mean [4, 6.67, 0] -> wrong; softmax of the views is
    # ~[0, 1, 0], [.995, .0025, .0025] twice -> mean ~[.66, .34, 0] -> right.
    e = [view('E', [0.0, 20.0, 0.0], 0), view('E', [6.0, 0.0, 0.0], 0),
         view('E', [6.0, 0.0, 0.0], 0)]
    expected = {
        'mean_score': (1.0, 0.0),
        'max_score': (0.0, 0.0),
        'mean_prob': (1.0, 1.0),
        # D: max of softmaxes [.11, .79, .61] -> right; E: [.995, 1, .0025]
        'max_prob': (1.0, 0.0),
    }
    for aggregate, (d_hit, e_hit) in expected.items():
        for samples, hit in ((d, d_hit), (e, e_hit)):
            out = run(MultiViewAccuracy(topk=1, aggregate=aggregate), samples)
            assert out['top1'] == hit, (aggregate, samples[0]['filename'])


def test_ties_count_against_the_prediction():
    scores = torch.zeros(4, 5)
    labels = torch.tensor([0, 1, 2, 4])
    assert not topk_hits(scores, labels, 1).any()
    assert not topk_hits(scores, labels, 4).any()   # 4 others tie with it
    assert topk_hits(scores, labels, 5).all()
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    # class 3 has two classes above it: top-2 miss, top-3 hit
    assert not topk_hits(scores, torch.tensor([3]), 2).item()
    assert topk_hits(scores, torch.tensor([3]), 3).item()
    # class 1 ties with class 2: miss at k=1, hit at k=2
    assert not topk_hits(scores, torch.tensor([1]), 1).item()
    assert topk_hits(scores, torch.tensor([1]), 2).item()


def test_mmaction_data_samples_through_the_evaluator():
    """mmaction2 1.1's layout (pred_scores.item / gt_labels.item, id in
    metainfo) through mmengine's Evaluator, as the test loop drives it."""
    evaluator = Evaluator(dict(type='MultiViewAccuracy', topk=(1, ),
                               aggregate='mean_score', num_views=2,
                               video_key='video_id'))

    def sample(vid, score, label):
        ds = ActionDataSample(metainfo=dict(video_id=vid))
        ds.set_gt_labels(label)
        ds.set_pred_score(torch.tensor(score))
        return ds

    evaluator.process([sample(7, [0.2, 0.1], 0), sample(8, [0.0, 1.0], 1)])
    evaluator.process([sample(8, [0.9, 0.0], 1), sample(7, [0.0, 0.3], 0)])
    out = evaluator.evaluate(4)
    # 7: mean [.1, .2] -> wrong; 8: mean [.45, .5] -> right
    assert out == {'acc/top1': 0.5, 'acc/num_videos': 2}


def test_registry_and_bad_inputs():
    metric = METRICS.build(dict(type='MultiViewAccuracy', topk=(1, )))
    assert isinstance(metric, MultiViewAccuracy)
    with pytest.raises(ValueError, match='aggregate'):
        MultiViewAccuracy(aggregate='median')
    with pytest.raises(KeyError, match='video id'):
        run(MultiViewAccuracy(), [dict(pred_score=torch.zeros(3),
                                       gt_label=1)])
    with pytest.raises(ValueError, match='different labels'):
        run(MultiViewAccuracy(topk=1),
            [view(1, [1.0, 0.0], 0), view(1, [1.0, 0.0], 1)])
    with pytest.raises(ValueError, match='num_views=3'):
        run(MultiViewAccuracy(topk=1, num_views=3),
            [view(1, [1.0, 0.0], 0), view(1, [1.0, 0.0], 0)])
    with pytest.raises(ValueError, match='already are probability'):
        run(MultiViewAccuracy(topk=1, aggregate='mean_prob'),
            [view(1, [0.7, 0.3], 0)])
    with pytest.raises(ValueError, match='undefined for 2 classes'):
        run(MultiViewAccuracy(topk=(1, 5)), [view(1, [2.0, 0.0], 0)])
    with pytest.raises(ValueError, match='NaN'):
        run(MultiViewAccuracy(topk=1), [view(1, [math.nan, 0.0], 0)])
    with pytest.raises(ValueError, match='one class index'):
        run(MultiViewAccuracy(topk=1), [view(1, [1.0, 0.0], [1, 0])])


# ----------------------------------------------------------------- mAP
# Pooled scores of four videos over three classes; class 1 has no positive.
#   class 0: scores .9 .5 .5 .1, labels 1 0 1 0.  Thresholds: .9 -> P 1,
#     R 1/2; .5 (two tied videos cross together) -> P 2/3, R 1.
#     AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
#   class 2: scores .5 .5 .1 .2, labels 0 1 0 1.  .5 -> P 1/2, R 1/2;
#     .2 -> P 2/3, R 1.  AP = 1/4 + 1/3 = 7/12.
#   mAP over the two classes with positives = (5/6 + 7/12) / 2 = 17/24.
POOLED = [[0.9, 0.1, 0.5], [0.5, 0.2, 0.5], [0.5, 0.3, 0.1], [0.1, 0.4, 0.2]]
LABELS = [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]


def test_map_by_hand_with_ties_absent_class_and_view_max_pooling():
    # Two views per video whose element-wise max is POOLED, the second views
    # arriving in a later batch.
    first, second = [], []
    for i, (score, label) in enumerate(zip(POOLED, LABELS)):
        low = [s - 0.1 * (i + 1) * (j + 1) for j, s in enumerate(score)]
        mixed = [s if j % 2 == i % 2 else lo
                 for j, (s, lo) in enumerate(zip(score, low))]
        other = [lo if j % 2 == i % 2 else s
                 for j, (s, lo) in enumerate(zip(score, low))]
        first.append(view(f'v{i}', mixed, label))
        second.append(view(f'v{i}', other, label))
    out = run(multi_hot_map(), first, second[::-1])
    assert out['mAP'] == pytest.approx(17 / 24)
    assert out['num_classes_evaluated'] == 2
    assert out['num_classes_absent'] == 1
    assert out['num_videos'] == 4

    # Mean pooling of the same views: the lower view of video i on class j
    # is 0.1 (i+1)(j+1) below, so the means are
    #   class 0: .85 (+) .40 (-) .35 (+) -.10 (-) -> AP 1/2 + 1/2 * 2/3 = 5/6
    #   class 2: .35 (-) .20 (+) -.35 (-) -.40 (+) -> AP 1/4 + 1/2 * 2/4 = 1/2
    mean_out = run(multi_hot_map(aggregate='mean'), first, second)
    assert mean_out['mAP'] == pytest.approx((5 / 6 + 1 / 2) / 2)


def test_map_is_invariant_to_the_order_of_tied_videos():
    base = run(multi_hot_map(),
               [view(i, s, lab) for i, (s, lab) in
                enumerate(zip(POOLED, LABELS))])
    # swap the two videos tied at 0.5 on class 0 (videos 1 and 2)
    order = [0, 2, 1, 3]
    swapped = run(multi_hot_map(),
                  [view(i, POOLED[i], LABELS[i]) for i in order])
    assert base['mAP'] == swapped['mAP'] == pytest.approx(17 / 24)


def test_all_tied_scores_give_the_positive_rate():
    # one class, 5 videos, 2 positives, every score equal: one threshold with
    # P = 2/5 and R = 1 -> AP = 2/5
    samples = [view(i, [0.3], [int(i < 2)]) for i in range(5)]
    assert run(multi_hot_map(), samples)['mAP'] == pytest.approx(0.4)


def test_map_index_labels_sigmoid_and_errors():
    # class indices as the Charades reader gives them (the default format),
    # plus a fifth video with no action at all: a negative for every class
    samples = [dict(video_id=i, pred_score=torch.tensor(s),
                    gt_label=torch.tensor([j for j, v in enumerate(lab)
                                           if v]))
               for i, (s, lab) in enumerate(zip(POOLED, LABELS))]
    samples.append(dict(video_id=9, pred_score=torch.tensor([0.0, 0.0, 0.0]),
                        gt_label=torch.tensor([], dtype=torch.long)))
    out = run(MultiLabelMAP(video_key='video_id', sigmoid=True,
                            aggregate='mean'), samples)
    # monotone sigmoid: same ranking; the extra negative ranks last in
    # classes 0 and 2 and does not change their AP
    assert out['mAP'] == pytest.approx(17 / 24)
    assert out['num_videos'] == 5
    with pytest.raises(ValueError, match='only 0 and 1'):
        run(multi_hot_map(), [view(0, [0.1, 0.2], [0.5, 1.0])])
    with pytest.raises(ValueError, match='length 3 for 2'):
        run(multi_hot_map(), [view(0, [0.1, 0.2], [0, 1, 0])])
    with pytest.raises(ValueError, match=r'indices must lie in \[0, 2\)'):
        run(MultiLabelMAP(), [view(0, [0.1, 0.2], [0, 2])])
    with pytest.raises(ValueError, match='no class has a positive'):
        run(multi_hot_map(), [view(0, [0.1, 0.2], [0, 0])])


def test_aggregate_views_orders_by_first_appearance():
    scores = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0]])
    ids, mean = aggregate_views(scores, ['b', 'a', 'b'], 'mean')
    assert ids == ['b', 'a']
    assert torch.equal(mean, torch.tensor([[3.0, -0.5], [3.0, 2.0]]))
    _, peak = aggregate_views(scores, ['b', 'a', 'b'], 'max')
    assert torch.equal(peak, torch.tensor([[5.0, 0.0], [3.0, 2.0]]))


# --------------------------------------------------------------- folds
def test_fold_summary_by_hand():
    out = summarize_folds({1: 0.80, 2: 0.85, 3: 0.90}, expected_num_folds=3)
    assert out['mean'] == pytest.approx(0.85)
    # population std: sqrt((0.05^2 + 0 + 0.05^2) / 3)
    assert out['std'] == pytest.approx(math.sqrt(0.005 / 3))
    assert out['folds'] == {1: 0.80, 2: 0.85, 3: 0.90}
    assert out['num_folds'] == 3
    assert summarize_folds({1: 0.80, 2: 0.85, 3: 0.90},
                           ddof=1)['std'] == pytest.approx(0.05)

    esc = {f'fold{i}': {'top1': t1, 'top5': t5} for i, (t1, t5) in
           enumerate([(0.8, 0.9), (0.7, 1.0), (0.9, 0.95), (0.8, 0.95),
                      (0.8, 0.95)], 1)}
    out = summarize_folds(esc, expected_num_folds=5)
    assert out['mean'] == pytest.approx({'top1': 0.8, 'top5': 0.95})
    # top1 deviations 0, -.1, .1, 0, 0 -> sqrt(.02 / 5)
    assert out['std']['top1'] == pytest.approx(math.sqrt(0.02 / 5))


def test_fold_summary_refuses_bad_input():
    with pytest.raises(ValueError, match='expected 5 folds'):
        summarize_folds({1: 0.9}, expected_num_folds=5)
    with pytest.raises(ValueError, match='not finite'):
        summarize_folds({1: 0.9, 2: math.nan})
    with pytest.raises(ValueError, match='metrics'):
        summarize_folds({1: {'top1': 0.9}, 2: {'top5': 0.9}})
    with pytest.raises(ValueError, match='non-empty'):
        summarize_folds({})
    with pytest.raises(ValueError, match='>= 2 folds'):
        summarize_folds({1: 0.5}, ddof=1)
