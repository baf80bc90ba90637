"""2D bottleneck ResNet over log-mel spectrograms (the audio CNN of AVBERT).

Architecture (Appendix A.1 and Table 3 of "Parameter Efficient Multimodal
Transformers for Video Representation Learning", ICLR 2021):

=======  ==========================================  ==================
stage    layers                                      output channels
=======  ==========================================  ==================
conv1    9x9, 32, stride 1 (no pooling afterwards)   32
res2     [1x1, 32;  3x3, 32;  1x1, 128] x 3          128
res3     [1x1, 64;  3x3, 64;  1x1, 256] x 4          256
res4     [1x1, 128; 3x3, 128; 1x1, 512] x 6          512
res5     [1x1, 256; 3x3, 256; 1x1, 1024] x 3         1024
=======  ==========================================  ==================

Every convolution is two-dimensional over (frequency, time) and is followed by
BatchNorm and ReLU, except the last 1x1 of each block and the projection
shortcut, whose ReLU comes after the residual sum.

Stage strides.  Table 3 lists kernels and widths only.  The paper's default
here is the usual ResNet layout: stride 1 in res2 and stride 2 (in both
frequency and time) in the first block of res3, res4 and res5, put on the 3x3
convolution.  For the paper's 1-s input of 128 mel bins x 220 frames this
gives a 16 x 28 map of 1024 channels.  The authors' release sets the audio stage
strides to ``[2, 2, 2, 2]`` (``AUDIO_RESNET.STRIDES`` in its ESC-50 and
Kinetics-Sounds configs); ``strides`` selects either.

Why mmaction2's ``ResNetAudio`` is not used.  It is the audio ResNet of
"Audiovisual SlowFast Networks" and differs from Table 3 in ways its arguments
cannot undo (checked on mmaction2 1.1.0):

* its stem is always a ``ConvAudio`` with ``op='sum'``: a 9x1 and a 1x9
  convolution run *in parallel* on the input, each with its own BN and ReLU,
  their outputs added and passed through one more BN and ReLU.  That is
  neither the paper's single 9x9 convolution nor the release's 9x1 *followed
  by* 1x9 stem;
* in its bottleneck the 3x3 convolution is built with ``norm_cfg=None,
  act_cfg=None``: where it is a plain 3x3 (``factorize=0``) no BN and no ReLU
  follow it; in the first two stages by default (``factorize=(1, 1, 0, 0)``)
  it is replaced by a parallel 3x1 / 1x3 pair whose outputs are concatenated,
  so the last 1x1 reads ``2 * planes`` channels.

The stem is therefore written here; the residual stages reuse mmaction2's 2D
``Bottleneck`` and ``make_res_layer`` (``mmaction.models.backbones.resnet``),
which are exactly the standard ConvModule bottleneck with the stride on the 3x3.

Release variant (``stem_type='separable'``).  The release uses a separable stem,
a 9x1 convolution (frequency) then a 1x9 convolution (time), both with 32
output channels and no pooling, on 80 mel bins x 128 frames (see
``configs/_base_/models/audio_resnet50_release.py``).  Each of the two
convolutions is followed here by BN and ReLU, as in the conv-BN-ReLU stems of
the PySlowFast code base the release builds on.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.backbones.resnet import Bottleneck, make_res_layer
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, kaiming_init
from torch.nn.modules.batchnorm import _BatchNorm

from avtoolkit.registry import MODELS

IntOrPair = Union[int, Tuple[int, int]]


def _pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    """Return ``value`` as a (frequency, time) pair of positive ints."""
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f'{name} must be a positive int or a pair of positive '
                         f'ints (frequency, time), got {value!r}')
    return value


@MODELS.register_module()
class AudioResNet(BaseModule):
    """Bottleneck ResNet on log-mel spectrograms, without stem pooling.

    Input ``(N, C_in, F, T_a)``: ``N`` spectrograms (clips) of ``C_in`` channels
    (1 for a mono log-mel), ``F`` mel bins and ``T_a`` frames.
    Output ``(N, 4 * base_channels * 8, F', T_a')`` (``(N, 1024, F', T_a')`` at
    the default width), where ``F'`` and ``T_a'`` are ``F`` and ``T_a`` divided
    (rounding up) by the product of the stem stride and the stage strides.

    Args:
        depth (int): 14, 26, 50, 101 or 152 (bottleneck blocks per stage
            (1, 1, 1, 1), (2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 23, 3) or
            (3, 8, 36, 3)). Defaults to 50, the paper's.
        in_channels (int): Channels of the input spectrogram. Defaults to 1.
        base_channels (int): Width of the stem and of the first stage's
            bottleneck; stage ``i`` (0-based) has width ``base_channels * 2**i``
            and outputs four times that. Defaults to 32 (Table 3).
        stem_type (str): ``'full'`` for one ``stem_kernel`` convolution (paper,
            9x9) or ``'separable'`` for a ``k x 1`` convolution followed by a
            ``1 x k`` one, each with BN and ReLU (authors' release).
            Defaults to ``'full'``.
        stem_kernel (int | tuple[int, int]): (frequency, time) kernel of the
            stem. Defaults to 9. Must be odd so that padding keeps the size.
        stem_stride (int | tuple[int, int]): (frequency, time) stride of the
            stem. Defaults to 1 (Table 3).
        strides (Sequence[int | tuple[int, int]]): Stride of the first block of
            each stage, either one int for both axes or a (frequency, time)
            pair. Defaults to ``(1, 2, 2, 2)``.
        frozen_stages (int): Freeze the stem (0) and the first
            ``frozen_stages`` stages: their parameters stop requiring grad and
            their BN layers stay in eval mode. -1 freezes nothing.
            Defaults to -1.
        norm_eval (bool): Keep every BN layer in eval mode while training.
            Defaults to False.
        zero_init_residual (bool): Start the last BN of every block at zero so
            that each block starts as an identity. Defaults to True.
        conv_cfg (dict): Convolution config.
            Defaults to ``dict(type='Conv2d')``.
        norm_cfg (dict): Normalization config.
            Defaults to ``dict(type='BN2d', requires_grad=True)``.
        act_cfg (dict): Activation config.
            Defaults to ``dict(type='ReLU', inplace=True)``.
        init_cfg (dict | list[dict], optional): mmengine initialization config;
            when None, convolutions get Kaiming-normal (fan-out) and BN layers
            weight 1 / bias 0 in :meth:`init_weights`. Defaults to None.
    """

    # Bottleneck blocks per stage.  14 and 26 are shallow variants for tests
    # and CPU demos; 50 is the paper's.
    arch_settings = {
        14: (1, 1, 1, 1),
        26: (2, 2, 2, 2),
        50: (3, 4, 6, 3),
        101: (3, 4, 23, 3),
        152: (3, 8, 36, 3),
    }
    stem_types = ('full', 'separable')

    def __init__(self,
                 depth: int = 50,
                 in_channels: int = 1,
                 base_channels: int = 32,
                 stem_type: str = 'full',
                 stem_kernel: IntOrPair = 9,
                 stem_stride: IntOrPair = 1,
                 strides: Sequence[IntOrPair] = (1, 2, 2, 2),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 conv_cfg: dict = dict(type='Conv2d'),
                 norm_cfg: dict = dict(type='BN2d', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU', inplace=True),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f'AudioResNet: depth must be one of '
                           f'{sorted(self.arch_settings)}, got {depth}')
        if stem_type not in self.stem_types:
            raise ValueError(f'AudioResNet: stem_type must be one of '
                             f'{self.stem_types}, got {stem_type!r}')
        stage_blocks = self.arch_settings[depth]
        if len(strides) != len(stage_blocks):
            raise ValueError(f'AudioResNet: need one stride per stage '
                             f'({len(stage_blocks)}), got {tuple(strides)}')
        if not -1 <= frozen_stages <= len(stage_blocks):
            raise ValueError(f'AudioResNet: frozen_stages must lie in '
                             f'[-1, {len(stage_blocks)}], got {frozen_stages}')
        self.depth = depth
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.stem_type = stem_type
        self.stem_kernel = _pair(stem_kernel, 'stem_kernel')
        if any(k % 2 == 0 for k in self.stem_kernel):
            raise ValueError(f'AudioResNet: stem_kernel must be odd, got '
                             f'{self.stem_kernel}')
        self.stem_stride = _pair(stem_stride, 'stem_stride')
        self.strides = tuple(_pair(s, 'strides[i]') for s in strides)
        self.stage_blocks = stage_blocks
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg

        self.conv1 = self._make_stem()

        self.res_layers = []
        inplanes = base_channels
        for i, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            layer = make_res_layer(
                Bottleneck,
                inplanes,
                planes,
                num_blocks,
                stride=self.strides[i],
                style='pytorch',
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
            inplanes = planes * Bottleneck.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
        self.feat_dim = inplanes
        self._freeze_stages()

    def _make_stem(self) -> nn.Module:
        """Stem convolution(s) with BN and ReLU; no pooling follows."""
        k_f, k_t = self.stem_kernel
        s_f, s_t = self.stem_stride
        common = dict(
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        if self.stem_type == 'full':
            return ConvModule(
                self.in_channels,
                self.base_channels,
                kernel_size=(k_f, k_t),
                stride=(s_f, s_t),
                padding=(k_f // 2, k_t // 2),
                **common)
        # Separable: frequency first, then time, each with BN and ReLU.
        return nn.Sequential(
            ConvModule(
                self.in_channels,
                self.base_channels,
                kernel_size=(k_f, 1),
                stride=(s_f, 1),
                padding=(k_f // 2, 0),
                **common),
            ConvModule(
                self.base_channels,
                self.base_channels,
                kernel_size=(1, k_t),
                stride=(1, s_t),
                padding=(0, k_t // 2),
                **common))

    def init_weights(self) -> None:
        """Kaiming-normal convolutions, unit BN, zero last BN per block.

        With an ``init_cfg`` (e.g. ``Pretrained``) mmengine's initialization is
        used instead.
        """
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                kaiming_init(m)
            elif isinstance(m, _BatchNorm):
                constant_init(m, 1)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    constant_init(m.conv3.bn, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode spectrograms.

        Args:
            x (torch.Tensor): ``(N, C_in, F, T_a)`` log-mel spectrograms.

        Returns:
            torch.Tensor: ``(N, feat_dim, F', T_a')`` feature map of the last
            stage (``feat_dim`` 1024 at the default width).
        """
        if x.dim() != 4:
            raise ValueError(
                f'AudioResNet expects (N, C_in, F, T_a) input of rank 4, got '
                f'shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'AudioResNet expects {self.in_channels} input channel(s) at '
                f'dim 1, got shape {tuple(x.shape)}')
        x = self.conv1(x)
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x

    def _freeze_stages(self) -> None:
        """Put frozen parts in eval mode and stop their gradients."""
        if self.frozen_stages < 0:
            return
        frozen = [self.conv1] + [
            getattr(self, name)
            for name in self.res_layers[:self.frozen_stages]
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'AudioResNet':
        """Set train/eval mode, keeping frozen parts and, with ``norm_eval``,
        every BN layer in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
