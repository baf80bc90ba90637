"""LinearSVM: exact solutions by hand, separable data, clip pooling."""
import pytest
import torch

from avtoolkit.evaluation import LinearSVM


def blobs(n_per_class, num_classes, dim, spread, seed, centres=None):
    g = torch.Generator().manual_seed(seed)
    if centres is None:
        centres = torch.randn(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim,
                                                   generator=g)
    return feats, labels, centres


TWO_POINTS = (torch.tensor([[-2.0], [2.0]]), torch.tensor([0, 1]))


def test_squared_hinge_matches_the_closed_form():
    # Points -2 (class 0) and +2 (class 1).  By symmetry b = 0 and the
    # class-1 scorer is w x, the class-0 scorer -w x; each of the two binary
    # problems has objective 1/2 w^2 + C * 2 (1 - 2w)^2, minimised at
    # w = 8C / (1 + 16C): 8/17 for C = 1.  J = 2 * (1/2 (8/17)^2
    # + 2 (1/17)^2) = 4/17, divided by N = 2 -> 2/17.
    x, y = TWO_POINTS
    svm = LinearSVM(C=1.0, standardize=False).fit(x, y)
    assert svm.converged_
    assert torch.allclose(svm.coef_, torch.tensor([[-8 / 17], [8 / 17]],
                                                  dtype=torch.float64),
                          atol=1e-7)
    assert torch.allclose(svm.intercept_, torch.zeros(2, dtype=torch.float64),
                          atol=1e-7)
    assert svm.objective(x, y) == pytest.approx(2 / 17, abs=1e-10)
    # C = 1/4 -> w = 2 / 5
    svm = LinearSVM(C=0.25, standardize=False).fit(x, y)
    assert svm.coef_[1, 0].item() == pytest.approx(0.4, abs=1e-7)


def test_multi_margin_reaches_the_margin():
    # Objective a^2 + C max(0, 0.1 - 4a) for weights (-a, a): its minimum
    # for C = 1 sits on the kink, 4a = margin, a = 0.025.
    x, y = TWO_POINTS
    svm = LinearSVM(C=1.0, loss='multi_margin', standardize=False,
                    epochs=2000, batch_size=2).fit(x, y)
    assert svm.coef_[1, 0].item() == pytest.approx(0.025, abs=1e-3)
    assert svm.coef_[0, 0].item() == pytest.approx(-0.025, abs=1e-3)


@pytest.mark.parametrize('loss', ['squared_hinge', 'multi_margin'])
def test_separable_blobs_and_determinism(loss):
    x, y, centres = blobs(30, 5, 16, 0.3, 0)
    xt, yt, _ = blobs(10, 5, 16, 0.3, 1, centres)
    kwargs = dict(loss=loss, epochs=40)
    svm = LinearSVM(**kwargs).fit(x, y)
    assert (svm.predict(x) == y).all()
    assert (svm.predict(xt) == yt).all()
    scores = svm.decision_function(xt)
    assert scores.shape == (50, 5) and scores.dtype == torch.float64
    again = LinearSVM(**kwargs).fit(x, y)
    assert torch.equal(again.coef_, svm.coef_)
    assert torch.equal(again.intercept_, svm.intercept_)


def test_standardization_is_folded_into_raw_weights():
    x, y, centres = blobs(20, 3, 8, 1.5, 2)
    xt, _, _ = blobs(10, 3, 8, 1.5, 3, centres)
    # float64 so that the rescaled inputs carry the same information
    x, xt = x.double(), xt.double()
    scale = torch.logspace(-3, 3, 8, dtype=torch.float64)
    shift = torch.linspace(-50, 50, 8, dtype=torch.float64)
    plain = LinearSVM(C=0.1).fit(x, y)
    moved = LinearSVM(C=0.1).fit(x * scale + shift, y)
    # the fit in standardised space is the same, so raw-space scores agree
    assert torch.allclose(plain.decision_function(xt),
                          moved.decision_function(xt * scale + shift),
                          atol=1e-6)
    # and the raw-space weights reproduce x @ W^T + b
    manual = xt @ plain.coef_.T + plain.intercept_
    assert torch.allclose(manual, plain.decision_function(xt))


def test_clip_scores_are_averaged_per_recording():
    x, y, centres = blobs(40, 4, 8, 0.5, 4)
    svm = LinearSVM().fit(x, y)
    # Two recordings of class 2, ten clips each; three clips of the first
    # recording look like class 0 and are misclassified on their own.
    clips, _, _ = blobs(20, 1, 8, 0.5, 5, centres[2:3])
    clips[:3] = centres[0] + 0.1
    groups = ['rec_a'] * 10 + ['rec_b'] * 10
    assert (svm.predict(clips[:3]) == 0).all()
    ids, scores = svm.decision_function_grouped(clips, groups)
    assert ids == ['rec_a', 'rec_b']
    full = svm.decision_function(clips)
    assert torch.allclose(scores[0], full[:10].mean(0))
    assert torch.allclose(scores[1], full[10:].mean(0))
    ids, pred = svm.predict_grouped(clips, groups)
    assert pred.tolist() == [2, 2]


def test_bad_inputs_are_refused():
    x, y = TWO_POINTS
    with pytest.raises(RuntimeError, match='not fitted'):
        LinearSVM().predict(x)
    with pytest.raises(ValueError, match='loss'):
        LinearSVM(loss='hinge')
    with pytest.raises(ValueError, match='C must be'):
        LinearSVM(C=0)
    with pytest.raises(ValueError, match='num_classes >= 2'):
        LinearSVM().fit(x, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        LinearSVM().fit(x, torch.tensor([0, 2]), num_classes=2)
    with pytest.raises(ValueError, match='integers'):
        LinearSVM().fit(x, torch.tensor([0.0, 1.0]))
    bad = x.clone()
    bad[0, 0] = float('inf')
    with pytest.raises(ValueError, match='NaN or infinity'):
        LinearSVM().fit(bad, y)
    svm = LinearSVM(standardize=False).fit(x, y)
    with pytest.raises(ValueError, match='width'):
        svm.decision_function(torch.zeros(3, 2))
