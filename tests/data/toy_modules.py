"""A tiny regression model and dataset for exercising the Runner in tests."""
import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from torch import nn

from avtoolkit.registry import DATASETS, MODELS


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """``inputs``: list of (in_dim,) tensors; ``data_samples``: list of scalars."""

    def __init__(self, in_dim: int = 8, hidden: int = 16,
                 nan_after: int = None):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # Make the loss NaN from the (nan_after + 1)-th training step on.
        self.nan_after = nan_after
        self.steps = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        pred = self.net(x).squeeze(-1)
        if mode == 'loss':
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
