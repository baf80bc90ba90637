"""Linear and k-NN probes on hand-made features."""
import pytest
import torch

from avtoolkit.evaluation import knn_probe, linear_probe


def blobs(n_per_class, num_classes, dim, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim,
                                                   generator=g)
    return feats, labels


def test_separable_blobs_are_solved():
    x, y = blobs(30, 5, 16, 0.3, 0)
    xt, yt = blobs(10, 5, 16, 0.3, 0)  # same centres, new noise draw order
    assert linear_probe(x, y, xt, yt)['top1'] == 1.0
    assert knn_probe(x, y, xt, yt, k=5)['top1'] == 1.0


def test_random_labels_give_chance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 8, generator=g)
    y = torch.randint(0, 4, (400, ), generator=g)
    xt = torch.randn(400, 8, generator=g)
    yt = torch.randint(0, 4, (400, ), generator=g)
    for result in (linear_probe(x, y, xt, yt), knn_probe(x, y, xt, yt)):
        assert 0.15 < result['top1'] < 0.35
        assert result['top5'] == 1.0  # only 4 classes


def test_knn_vote_by_hand():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # cosine similarities of [0.3, 1] to the three: 0.287, 0.391, 0.958
    test = torch.tensor([[0.3, 1.0]])
    assert knn_probe(train, labels, test, torch.tensor([1]), k=1)['top1'] == 1
    # k=3, T=1: class 0 gets e^.287 + e^.391 = 2.81 > class 1's e^.958 = 2.61
    result = knn_probe(train, labels, test, torch.tensor([1]), k=3,
                       temperature=1.0, num_classes=2)
    assert result['top1'] == 0.0
    # a sharper temperature lets the single close neighbour win again
    result = knn_probe(train, labels, test, torch.tensor([1]), k=3,
                       temperature=0.1, num_classes=2)
    assert result['top1'] == 1.0


def test_bad_features_are_refused():
    x, y = blobs(3, 2, 4, 0.1, 0)
    with pytest.raises(ValueError, match='width'):
        linear_probe(x, y, x[:, :3], y)
    bad = x.clone()
    bad[0, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        knn_probe(bad, y, x, y)
