"""Linear SVM on frozen features (the ESC-50 protocol of AVBERT).

The paper evaluates the audio CNN on ESC-50 with "a multi-class one-vs-all
linear SVM on top of the fixed audio CNN" (Sec. 4, Appendix A.4), trained on
the features of 2-second clips; at test time the scores of 10 equally spaced
clips of a recording are averaged (Appendix A.3).  The authors' release trains
a linear layer with a multi-class hinge loss (``nn.MultiMarginLoss``, margin
0.1) with Adam instead.  :class:`LinearSVM` offers both:

``loss='squared_hinge'`` (default, the paper's one-vs-all SVM)
    ``K`` binary SVMs, class ``c`` against the rest, with labels
    ``Y_ic = +1`` if ``y_i = c`` else ``-1`` and scores
    ``f_ic = w_c . x_i + b_c``::

        J(W, b) = 1/2 ||W||_F^2 + C sum_i sum_c max(0, 1 - Y_ic f_ic)^2

    the L2-regularised squared-hinge primal of scikit-learn's ``LinearSVC``
    (default loss), except that the biases are not penalised.  The objective
    is convex and continuously differentiable, and is minimised full-batch
    with L-BFGS (strong Wolfe line search) in float64 from zero, which is
    deterministic: no learning rate, no shuffling.

``loss='multi_margin'`` (the release's head)
    One multi-class hinge over the ``K`` scores (Weston-Watkins form, as in
    ``torch.nn.MultiMarginLoss`` with ``p=1``)::

        J(W, b) = 1/2 ||W||_F^2
                  + C sum_i 1/K sum_{j != y_i} max(0, margin - f_iy_i + f_ij)

    It is not differentiable, so it is minimised like the release does: Adam
    on mini-batches with a learning rate decaying linearly to zero, with the
    sample order drawn from a seeded generator (deterministic on CPU).  The
    release's Adam ``weight_decay`` lambda corresponds to
    ``C = 1 / (lambda N)`` for ``N`` training samples.

In both cases the objective is divided by ``N`` while optimising (same
minimiser).  With ``standardize=True`` features are first shifted and scaled
by the training mean and standard deviation, and the fitted weights are folded
back so that :attr:`coef_` and :attr:`intercept_` act on raw features.

Shapes: features ``(N, D)`` float, labels ``(N,)`` int64 in ``[0, K)``,
scores ``(N, K)`` float64.
"""
import math
import warnings
from typing import Hashable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import aggregate_views


class LinearSVM:
    """Multi-class linear SVM trained on fixed features.

    Args:
        C (float): inverse regularisation strength (see the module docstring).
            Defaults to 1.0.
        loss (str): ``'squared_hinge'`` (one-vs-all) or ``'multi_margin'``.
            Defaults to ``'squared_hinge'``.
        margin (float): margin of ``'multi_margin'`` (0.1 in the release).
            Defaults to 0.1.
        standardize (bool): standardise features with training statistics.
            Defaults to True.
        max_iter (int): L-BFGS iterations (``'squared_hinge'``).
            Defaults to 1000.
        tol (float): L-BFGS stops when the largest absolute gradient entry of
            the ``N``-normalised objective drops below this. Defaults to 1e-7.
        epochs (int): passes over the data (``'multi_margin'``); the release
            uses 300 epochs of batch 128, about the paper's 38K iterations on
            ESC-50's 16K training clips. Defaults to 300.
        batch_size (int): mini-batch size (``'multi_margin'``).
            Defaults to 128.
        lr (float): initial Adam learning rate (``'multi_margin'``).
            Defaults to 0.003.
        seed (int): seed of the sample order (``'multi_margin'``).
            Defaults to 0.

    Attributes (after :meth:`fit`):
        coef_ (Tensor): ``(K, D)`` float64 weights on raw features.
        intercept_ (Tensor): ``(K,)`` float64 biases.
        num_classes (int): ``K``.
        n_iter_ (int): optimiser iterations (L-BFGS) or steps (Adam).
        converged_ (bool): L-BFGS met ``tol`` (always True for Adam, which runs
            its fixed schedule).
    """

    LOSSES = ('squared_hinge', 'multi_margin')

    def __init__(self,
                 C: float = 1.0,
                 loss: str = 'squared_hinge',
                 margin: float = 0.1,
                 standardize: bool = True,
                 max_iter: int = 1000,
                 tol: float = 1e-7,
                 epochs: int = 300,
                 batch_size: int = 128,
                 lr: float = 0.003,
                 seed: int = 0) -> None:
        if loss not in self.LOSSES:
            raise ValueError(f'loss must be one of {self.LOSSES}, got '
                             f'{loss!r}')
        if not (isinstance(C, (int, float)) and C > 0 and math.isfinite(C)):
            raise ValueError(f'C must be a positive finite number, got {C!r}')
        if not margin > 0:
            raise ValueError(f'margin must be positive, got {margin!r}')
        for name, value in (('max_iter', max_iter), ('epochs', epochs),
                            ('batch_size', batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}')
        if not tol > 0 or not lr > 0:
            raise ValueError('tol and lr must be positive')
        self.C = float(C)
        self.loss = loss
        self.margin = float(margin)
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.coef_: Optional[Tensor] = None
        self.intercept_: Optional[Tensor] = None
        self.num_classes: Optional[int] = None
        self.n_iter_ = 0
        self.converged_ = False
        # Parameters in the standardised space, and the standardisation.
        self._w: Optional[Tensor] = None
        self._b: Optional[Tensor] = None
        self._mean: Optional[Tensor] = None
        self._scale: Optional[Tensor] = None

    # ------------------------------------------------------------ checking
    @staticmethod
    def _features(x: Tensor, width: Optional[int] = None) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0:
            raise ValueError('features must be a non-empty (N, D) tensor, got '
                             f'{getattr(x, "shape", type(x).__name__)}')
        if width is not None and x.shape[1] != width:
            raise ValueError(f'features have width {x.shape[1]}, the SVM was '
                             f'fitted on width {width}')
        x = x.detach().cpu().to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError('features contain NaN or infinity')
        return x

    def _labels(self, y: Tensor, n: int, num_classes: int) -> Tensor:
        if not isinstance(y, Tensor) or y.dim() != 1 or len(y) != n:
            raise ValueError(f'labels must be a ({n},) tensor, got '
                             f'{getattr(y, "shape", type(y).__name__)}')
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f'labels must be integers, got {y.dtype}')
        y = y.detach().cpu().long()
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f'labels must lie in [0, {num_classes}), got '
                             f'[{y.min().item()}, {y.max().item()}]')
        return y

    def _check_fitted(self) -> None:
        if self.coef_ is None:
            raise RuntimeError('this LinearSVM is not fitted; call fit first')

    # ----------------------------------------------------------- objective
    def _loss_sum(self, scores: Tensor, y: Tensor) -> Tensor:
        """Sum over samples of the data term (without C), scores (n, K)."""
        if self.loss == 'squared_hinge':
            sign = torch.full_like(scores, -1.0)
            sign.scatter_(1, y[:, None], 1.0)
            return F.relu(1.0 - sign * scores).pow(2).sum()
        true = scores.gather(1, y[:, None])                       # (n, 1)
        viol = F.relu(self.margin - true + scores)                # (n, K)
        viol = viol.scatter(1, y[:, None], 0.0)                   # j != y_i
        return viol.sum() / scores.shape[1]

    def _normalized_objective(self, xs: Tensor, y: Tensor, w: Tensor,
                              b: Tensor) -> Tensor:
        n = xs.shape[0]
        scores = xs @ w.T + b
        return (0.5 * w.pow(2).sum() + self.C * self._loss_sum(scores, y)) / n

    def objective(self, x: Tensor, y: Tensor) -> float:
        """``J(W, b) / N`` of the fitted SVM on ``(x, y)`` (raw features)."""
        self._check_fitted()
        x = self._features(x, self.coef_.shape[1])
        y = self._labels(y, x.shape[0], self.num_classes)
        xs = (x - self._mean) / self._scale
        return self._normalized_objective(xs, y, self._w, self._b).item()

    # ----------------------------------------------------------------- fit
    def fit(self,
            x: Tensor,
            y: Tensor,
            num_classes: Optional[int] = None) -> 'LinearSVM':
        """Fit on ``(N, D)`` features and ``(N,)`` labels; returns ``self``.

        ``num_classes`` defaults to ``max(y) + 1``; it must be at least 2.
        For multi-clip data pass every clip as a sample with the label of
        its recording.
        """
        x = self._features(x)
        if num_classes is None:
            if not isinstance(y, Tensor) or y.numel() == 0:
                raise ValueError('labels must be a non-empty tensor')
            num_classes = int(y.max()) + 1
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError('an SVM needs num_classes >= 2, got '
                             f'{num_classes!r}')
        y = self._labels(y, x.shape[0], num_classes)
        n, dim = x.shape

        if self.standardize:
            mean = x.mean(dim=0)
            scale = x.std(dim=0, unbiased=False)
            scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        else:
            mean = x.new_zeros(dim)
            scale = x.new_ones(dim)
        xs = (x - mean) / scale

        w = torch.zeros(num_classes, dim, dtype=torch.float64,
                        requires_grad=True)
        b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
        if self.loss == 'squared_hinge':
            self._fit_lbfgs(xs, y, w, b)
        else:
            self._fit_adam(xs, y, w, b)

        self._w, self._b = w.detach(), b.detach()
        self._mean, self._scale = mean, scale
        self.coef_ = self._w / scale
        self.intercept_ = self._b - self.coef_ @ mean
        self.num_classes = num_classes
        return self

    def _fit_lbfgs(self, xs: Tensor, y: Tensor, w: Tensor, b: Tensor) -> None:
        optimizer = torch.optim.LBFGS([w, b],
                                      lr=1.0,
                                      max_iter=self.max_iter,
                                      max_eval=self.max_iter * 2,
                                      tolerance_grad=self.tol,
                                      tolerance_change=1e-15,
                                      history_size=20,
                                      line_search_fn='strong_wolfe')

        def closure() -> Tensor:
            optimizer.zero_grad()
            value = self._normalized_objective(xs, y, w, b)
            value.backward()
            return value

        optimizer.step(closure)
        self.n_iter_ = int(optimizer.state[w]['n_iter'])
        optimizer.zero_grad()
        self._normalized_objective(xs, y, w, b).backward()
        grad = max(w.grad.abs().max().item(), b.grad.abs().max().item())
        # Allow a little slack: L-BFGS stops on the gradient it last saw.
        self.converged_ = grad <= 10 * self.tol
        if not self.converged_:
            warnings.warn(
                f'LinearSVM: L-BFGS stopped after {self.n_iter_} iterations '
                f'with gradient {grad:.2e} > tol={self.tol:.0e}; raise '
                'max_iter or C may be too large for these features')

    def _fit_adam(self, xs: Tensor, y: Tensor, w: Tensor, b: Tensor) -> None:
        n = xs.shape[0]
        steps_per_epoch = math.ceil(n / self.batch_size)
        total = self.epochs * steps_per_epoch
        optimizer = torch.optim.Adam([w, b], lr=self.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1.0 - step / total))
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            for idx in order.split(self.batch_size):
                optimizer.zero_grad()
                scores = xs[idx] @ w.T + b
                value = 0.5 * w.pow(2).sum() / n + \
                    self.C * self._loss_sum(scores, y[idx]) / len(idx)
                value.backward()
                optimizer.step()
                scheduler.step()
        self.n_iter_ = total
        self.converged_ = True

    # ------------------------------------------------------------- predict
    def decision_function(self, x: Tensor) -> Tensor:
        """``(N, D)`` features -> ``(N, K)`` float64 class scores."""
        self._check_fitted()
        x = self._features(x, self.coef_.shape[1])
        return x @ self.coef_.T + self.intercept_

    def predict(self, x: Tensor) -> Tensor:
        """``(N, D)`` features -> ``(N,)`` int64 predicted classes."""
        return self.decision_function(x).argmax(dim=1)

    def decision_function_grouped(
            self,
            x: Tensor,
            groups: Sequence[Hashable],
            reduce: str = 'mean') -> Tuple[List[Hashable], Tensor]:
        """Scores pooled over the clips of each recording.

        Args:
            x: ``(N, D)`` clip features.
            groups: ``N`` recording ids; clips with equal ids are pooled.
            reduce: ``'mean'`` (paper: average of the 10 clip scores) or
                ``'max'``.

        Returns:
            ``(ids, scores)``: the ``G`` recording ids in order of first
            appearance and their ``(G, K)`` pooled scores.
        """
        return aggregate_views(self.decision_function(x), list(groups),
                               reduce)

    def predict_grouped(self,
                        x: Tensor,
                        groups: Sequence[Hashable],
                        reduce: str = 'mean') -> Tuple[List[Hashable], Tensor]:
        """``(ids, (G,) predicted classes)`` from pooled clip scores."""
        ids, scores = self.decision_function_grouped(x, groups, reduce)
        return ids, scores.argmax(dim=1)
