"""A tiny regression model and dataset for exercising the Runner in tests."""
import json
import os
import signal

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch import nn

from avtoolkit.registry import DATASETS, HOOKS, METRICS, MODELS


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """``inputs``: list of (in_dim,) tensors; ``data_samples``: list of scalars."""

    def __init__(self, in_dim: int = 8, hidden: int = 16,
                 nan_after: int = None, dropout: float = 0.0,
                 input_noise: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1))
        # Gaussian noise on the training inputs from numpy's global generator
        # (exercises the numpy state saved with checkpoints).
        self.input_noise = input_noise
        # Make the loss NaN from the (nan_after + 1)-th training step on.
        self.nan_after = nan_after
        self.steps = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        pred = self.net(x).squeeze(-1)
        if mode == 'loss':
            if self.input_noise:
                noise = np.random.normal(0.0, self.input_noise, tuple(x.shape))
                x = x + torch.as_tensor(noise, dtype=x.dtype)
                pred = self.net(x).squeeze(-1)
            target = torch.as_tensor(data_samples, dtype=pred.dtype)
            self.steps += 1
            loss = ((pred - target)**2).mean()
            if self.nan_after is not None and self.steps > self.nan_after:
                loss = loss * float('nan')
            return dict(loss_mse=loss)
        return pred


@DATASETS.register_module(force=True)
class ToyRegressionDataset(BaseDataset):
    """``num_samples`` fixed random points with a noiseless linear target."""

    def __init__(self, num_samples: int = 64, in_dim: int = 8, seed: int = 0,
                 **kwargs):
        self.num_samples, self.in_dim, self.seed = num_samples, in_dim, seed
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.num_samples, self.in_dim, generator=g)
        w = torch.randn(self.in_dim, generator=g)
        y = x @ w
        return [dict(inputs=x[i], data_samples=float(y[i]))
                for i in range(self.num_samples)]

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        return dict(inputs=info['inputs'], data_samples=info['data_samples'])


@HOOKS.register_module(force=True)
class KillProcessHook(Hook):
    """Simulates a crash: SIGKILL the process once iteration ``at_iter`` has
    finished (after the checkpoint hook of that iteration has run)."""
    priority = 'LOWEST'

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class FreezeRankHook(Hook):
    """Simulates a frozen rank: SIGSTOP the process of ``rank`` once
    iteration ``at_iter`` has finished."""
    priority = 'LOWEST'

    def __init__(self, rank: int, at_iter: int):
        self.rank, self.at_iter = rank, at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.rank == self.rank and runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGSTOP)


@HOOKS.register_module(force=True)
class RecordBatchesHook(Hook):
    """Appends the first input of every training batch to ``out_file`` (one
    JSON line per iteration), to compare data order across runs."""

    def __init__(self, out_file: str):
        self.out_file = out_file

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        inputs = data_batch['inputs']
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        if isinstance(first, dict):
            first = next(iter(first.values()))
        with open(self.out_file, 'a') as f:
            f.write(json.dumps(dict(
                iter=runner.iter,
                checksum=float(torch.as_tensor(first).double().sum()))) +
                    '\n')


@MODELS.register_module(force=True)
class TinyConv3d(nn.Module):
    """A tiny visual CNN for ``ClipSequenceEncoder``:
    (N, 3, F, H, W) -> (N, 6, F, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@MODELS.register_module(force=True)
class TinyConv2d(nn.Module):
    """A tiny audio CNN for ``ClipSequenceEncoder``:
    (N, 1, mel, frames) -> (N, 5, mel, frames)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@METRICS.register_module(force=True)
class ToyMSEMetric(BaseMetric):
    """Mean squared error of the toy regressor's predictions."""

    def process(self, data_batch, data_samples):
        targets = data_batch['data_samples']
        for pred, target in zip(data_samples, targets):
            self.results.append((float(pred) - float(target))**2)

    def compute_metrics(self, results):
        return dict(mse=sum(results) / max(len(results), 1))
