"""Classification heads of the downstream protocols.

:class:`MLPClsHead` maps a pooled feature ``(N, C_in)`` to class logits
``(N, num_classes)`` through ``num_layers`` hidden layers (Linear,
activation, dropout) and a final linear classifier.  The paper puts "a 2-layer
MLP with softmax classifier" on top of the whole model for Kinetics-Sounds and
Charades (Sec. 3, Table 2(c)); ``num_layers=2`` (default) reads this as two
hidden layers followed by the classifier, ``num_layers=1`` as one hidden
layer whose output layer is the classifier.  ``num_layers=0`` is a plain
linear classifier (the UCF101 protocol).

``norm`` standardises the input feature first.  ``'batch'`` is a BatchNorm
without affine parameters (running statistics at test time), the usual
choice for linear probing of frozen features (MAE, He et al. 2022, Sec. A.2):
pooled encoder features are often dominated by an offset shared by every
video, with the class carried by variations a few percent of its size.  From
the 0.02-std initialisation the head then learns only that offset: on the
Kinetics-Sounds demo (docs/benchmarks.md) the 2-layer head trained on frozen
features kept the loss at ln 10 for 200 iterations without it (test top-1
0.10) and reached 0.47 with it.  ``'layer'`` (LayerNorm over channels) rescales each
feature on its own and keeps that shared offset.  The paper does not say;
the default is no normalisation.
"""
from functools import partial
from typing import Optional, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from avtoolkit.registry import MODELS

_ACTIVATIONS = {'gelu': nn.GELU, 'relu': nn.ReLU}
_NORMS = {'batch': partial(nn.BatchNorm1d, affine=False),
          'layer': nn.LayerNorm}


@MODELS.register_module()
class MLPClsHead(BaseModule):
    """Hidden layers + linear classifier on a pooled feature.

    Args:
        in_channels: C_in, size of the input feature.
        num_classes: number of output logits.
        hidden_channels: width of the hidden layers (default ``in_channels``).
        num_layers: number of hidden ``Linear -> activation -> dropout``
            layers before the classifier (>= 0).
        act: ``'gelu'`` or ``'relu'``.
        dropout: dropout probability after every hidden layer and on the
            input of the classifier when there is no hidden layer.
        norm: normalisation of the input feature: ``None``/``False``
            (none), ``'batch'`` (BatchNorm1d without affine parameters) or
            ``'layer'`` (LayerNorm; ``True`` is read as ``'layer'``).
        init_std: std of the normal init of every Linear weight (biases 0).
        init_cfg: mmengine init config.

    Shapes: ``(N, in_channels)`` -> ``(N, num_classes)``.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 hidden_channels: Optional[int] = None,
                 num_layers: int = 2,
                 act: str = 'gelu',
                 dropout: float = 0.1,
                 norm: Union[None, bool, str] = None,
                 init_std: float = 0.02,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('num_classes', num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}')
        if hidden_channels is None:
            hidden_channels = in_channels
        if isinstance(hidden_channels, bool) or not isinstance(
                hidden_channels, int) or hidden_channels < 1:
            raise ValueError('hidden_channels must be a positive int or None, '
                             f'got {hidden_channels!r}')
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) \
                or num_layers < 0:
            raise ValueError(f'num_layers must be an int >= 0, got '
                             f'{num_layers!r}')
        if act not in _ACTIVATIONS:
            raise ValueError(f'act must be one of {tuple(_ACTIVATIONS)}, got '
                             f'{act!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout!r}')
        if norm is True:
            norm = 'layer'
        if norm is False:
            norm = None
        if norm is not None and not (isinstance(norm, str)
                                     and norm in _NORMS):
            raise ValueError(f"norm must be None, 'batch' or 'layer', got "
                             f'{norm!r}')
        self.norm = norm
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.init_std = init_std

        layers = [_NORMS[norm](in_channels)] if norm else []
        width = in_channels
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_channels), _ACTIVATIONS[act](),
                       nn.Dropout(dropout)]
            width = hidden_channels
        if num_layers == 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*layers)
        self.fc_cls = nn.Linear(width, num_classes)
        self._reset()

    def _reset(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=self.init_std)
                nn.init.zeros_(m.bias)

    def init_weights(self) -> None:
        super().init_weights()
        if not self.init_cfg:
            self._reset()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels)`` features -> ``(N, num_classes)`` logits."""
        if not isinstance(x, Tensor) or x.dim() != 2 \
                or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else \
                type(x).__name__
            raise ValueError(f'MLPClsHead expects (N, {self.in_channels}) '
                             f'features, got {shape}')
        return self.fc_cls(self.mlp(x))

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'num_classes={self.num_classes}, '
                f'num_layers={self.num_layers}, norm={self.norm}')
