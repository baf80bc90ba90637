"""Per-clip CNN applied to a sequence of clips: the local feature embedding.

AVBERT (ICLR 2021, Sec. 2 "Local Feature Embedding") encodes every clip of a
sequence independently with a CNN, visual clips with a visual CNN and audio
clips with an audio CNN, to get ``x_{1:T} in R^{T x D}``.  The authors' release
maps the pooled CNN feature to ``D = 768`` with a Linear layer followed by
LayerNorm; :class:`ClipSequenceEncoder` does the same around any registered CNN.

Shapes::

    x          (B, T, *clip_shape)      e.g. visual (B, T, C, F, H, W)
                                             audio  (B, T, 1, n_mels, T_a)
    flattened  (B*T, *clip_shape)       one batch of clips for the CNN
    CNN output (B*T, C_k, ...) per pathway k (a tensor, or a tuple/list of them)
    pooled     (B*T, feat_dim)          global average over all axes after C_k,
                                        pathways concatenated in output order
    output     (B, T, embed_dim)        Linear(feat_dim, embed_dim) + LayerNorm
"""
import contextlib
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as torch_cp
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from avtoolkit.registry import MODELS


class _KeepBatchNormStats:
    """Context manager that undoes running-statistic updates of BN layers.

    Activation checkpointing runs the CNN forward a second time during the
    backward pass.  In training mode every BatchNorm layer would then update
    its running mean/variance (and batch counter) twice for the same batch.
    Used as the *recompute* context of :func:`torch.utils.checkpoint.checkpoint`
    it restores those buffers when the recomputation ends, so a checkpointed
    step leaves the same statistics as a plain one.  The batch statistics used
    to normalize, and hence the gradients, are not affected.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: List = []

    def __enter__(self) -> '_KeepBatchNormStats':
        self.saved = []
        for m in self.module.modules():
            if isinstance(m, _BatchNorm) and m.training \
                    and m.track_running_stats:
                self.saved.append(
                    (m, m.running_mean.clone(), m.running_var.clone(),
                     m.num_batches_tracked.clone()))
        return self

    def __exit__(self, *exc_info) -> bool:
        with torch.no_grad():
            for m, mean, var, count in self.saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        self.saved = []
        return False


def global_average_pool(feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                        num_clips: int) -> torch.Tensor:
    """Pool CNN outputs to one vector per clip.

    Args:
        feats: a tensor ``(N, C, *spatial)`` or a tuple/list of such tensors
            (one per pathway, e.g. SlowFast's ``(slow, fast)``).  A rank-2
            ``(N, C)`` tensor is taken as already pooled.
        num_clips (int): the expected ``N``.

    Returns:
        torch.Tensor: ``(N, sum_k C_k)``, pathways concatenated in order.
    """
    if isinstance(feats, torch.Tensor):
        feats = (feats, )
    if not isinstance(feats, (tuple, list)) or len(feats) == 0:
        raise TypeError('the CNN must return a tensor or a non-empty '
                        f'tuple/list of tensors, got {type(feats).__name__}')
    pooled = []
    for k, f in enumerate(feats):
        if not isinstance(f, torch.Tensor) or f.dim() < 2 \
                or f.shape[0] != num_clips:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else f
            raise ValueError(
                f'CNN output {k} must be a (N={num_clips}, C, ...) tensor, '
                f'got {shape}')
        pooled.append(f.flatten(2).mean(dim=2) if f.dim() > 2 else f)
    return torch.cat(pooled, dim=1)


@MODELS.register_module()
class ClipSequenceEncoder(BaseModule):
    """Encode every clip of a clip sequence with one CNN into a D-dim vector.

    Args:
        cnn (dict | nn.Module): Per-clip CNN, a config built from ``MODELS``
            (e.g. ``dict(type='ResNet3dSlowFast', ...)`` or
            ``dict(type='AudioResNet', ...)``) or a module.  It takes
            ``(N, *clip_shape)`` and returns a feature map ``(N, C, ...)`` or a
            tuple of them.
        feat_dim (int): Channels after global pooling (sum over pathways):
            2304 for SlowFast-R50 (2048 + 256), 2048 for a ResNet3d-50, 1024
            for the audio ResNet-50 of width 32.  Checked at every forward.
        embed_dim (int): Output dimension ``D``. Defaults to 768.
        clip_chunk_size (int, optional): Run the CNN on at most this many clips
            at a time and concatenate.  Bounds activation memory in inference,
            and in training together with ``with_cp``.  Note that BatchNorm in
            training mode then normalizes each chunk with its own statistics.
            None runs all ``B*T`` clips at once. Defaults to None.
        with_cp (bool): Checkpoint the CNN activations of every chunk
            (non-reentrant :func:`torch.utils.checkpoint.checkpoint`): they are
            recomputed in the backward pass instead of stored, and BN running
            statistics are updated once, as without checkpointing.  Only active
            when autograd is recording. Defaults to False.
        clip_ndim (int, optional): Rank of one clip, checked on the input:
            4 for visual ``(C, F, H, W)``, 3 for audio ``(1, n_mels, T_a)``.
            None accepts any rank >= 1. Defaults to None.
        layer_norm_eps (float): Epsilon of the output LayerNorm.
            Defaults to 1e-5.
        init_std (float): Standard deviation of the normal initialization of
            the projection weight (bias starts at 0). Defaults to 0.02.
        init_cfg (dict | list[dict], optional): mmengine initialization config.
            The CNN is initialized by its own ``init_weights`` when the model's
            ``init_weights`` runs. Defaults to None.

    Attributes:
        feat_dim (int): pooled CNN feature size.
        embed_dim (int): output size ``D``.
    """

    def __init__(self,
                 cnn: Union[dict, nn.Module],
                 feat_dim: int,
                 embed_dim: int = 768,
                 clip_chunk_size: Optional[int] = None,
                 with_cp: bool = False,
                 clip_ndim: Optional[int] = None,
                 layer_norm_eps: float = 1e-5,
                 init_std: float = 0.02,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(cnn, nn.Module):
            self.cnn = cnn
        elif isinstance(cnn, dict):
            self.cnn = MODELS.build(cnn)
        else:
            raise TypeError('cnn must be a config dict or an nn.Module, got '
                            f'{type(cnn).__name__}')
        for name, value in (('feat_dim', feat_dim), ('embed_dim', embed_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        if clip_chunk_size is not None and (
                not isinstance(clip_chunk_size, int) or clip_chunk_size <= 0):
            raise ValueError('clip_chunk_size must be None or a positive int, '
                             f'got {clip_chunk_size!r}')
        if clip_ndim is not None and (not isinstance(clip_ndim, int)
                                      or clip_ndim < 1):
            raise ValueError(
                f'clip_ndim must be None or a positive int, got {clip_ndim!r}')
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.clip_chunk_size = clip_chunk_size
        self.with_cp = with_cp
        self.clip_ndim = clip_ndim

        self.proj = nn.Linear(feat_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        nn.init.normal_(self.proj.weight, std=init_std)
        nn.init.zeros_(self.proj.bias)

    def _cnn_features(self, clips: torch.Tensor) -> torch.Tensor:
        """``(n, *clip_shape)`` -> pooled ``(n, feat_dim)`` for one chunk."""
        n = clips.shape[0]

        def run(inp: torch.Tensor) -> torch.Tensor:
            return global_average_pool(self.cnn(inp), n)

        if self.with_cp and torch.is_grad_enabled():
            feats = torch_cp.checkpoint(
                run,
                clips,
                use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(),
                                    _KeepBatchNormStats(self.cnn)))
        else:
            feats = run(clips)
        if feats.shape[1] != self.feat_dim:
            raise ValueError(
                f'ClipSequenceEncoder: the CNN ({type(self.cnn).__name__}) '
                f'gives {feats.shape[1]} channels after pooling, but feat_dim '
                f'is {self.feat_dim}; set feat_dim={feats.shape[1]} or fix the '
                'CNN config')
        return feats

    def forward(self,
                x: torch.Tensor,
                valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed every clip of every sequence.

        Args:
            x (torch.Tensor): ``(B, T, *clip_shape)`` clip sequences, e.g.
                ``(B, T, C, F, H, W)`` video or ``(B, T, 1, n_mels, T_a)``
                log-mel spectrograms.
            valid_mask (torch.Tensor, optional): ``(B, T)`` bool, True where a
                clip exists.  Clips marked False (sequence padding) are not
                passed through the CNN (so they neither cost compute nor enter
                BatchNorm statistics) and get an all-zero embedding.  None
                encodes every clip.

        Returns:
            torch.Tensor: ``(B, T, embed_dim)`` clip embeddings.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'ClipSequenceEncoder expects a tensor, got '
                            f'{type(x).__name__}')
        if x.dim() < 3:
            raise ValueError(
                'ClipSequenceEncoder expects (B, T, *clip_shape) input with a '
                f'clip of rank >= 1, got shape {tuple(x.shape)}')
        if self.clip_ndim is not None and x.dim() != self.clip_ndim + 2:
            raise ValueError(
                f'ClipSequenceEncoder expects (B, T, *clip_shape) input with '
                f'clips of rank {self.clip_ndim} (rank {self.clip_ndim + 2} '
                f'in all), got shape {tuple(x.shape)}')
        B, T = x.shape[:2]
        clips = x.flatten(0, 1)  # (B*T, *clip_shape)

        index = None
        if valid_mask is not None:
            if not isinstance(valid_mask, torch.Tensor) \
                    or valid_mask.dtype != torch.bool \
                    or tuple(valid_mask.shape) != (B, T):
                got = (f'{valid_mask.dtype} tensor of shape '
                       f'{tuple(valid_mask.shape)}' if isinstance(
                           valid_mask, torch.Tensor) else
                       type(valid_mask).__name__)
                raise ValueError(f'valid_mask must be a bool tensor of shape '
                                 f'(B, T) = ({B}, {T}), got {got}')
            index = valid_mask.flatten().nonzero(as_tuple=True)[0]
            clips = clips.index_select(0, index)

        num = clips.shape[0]
        if num == 0:
            return x.new_zeros(B, T, self.embed_dim)
        chunk = self.clip_chunk_size or num
        feats = torch.cat(
            [self._cnn_features(c) for c in clips.split(chunk, dim=0)], dim=0)
        emb = self.norm(self.proj(feats))  # (num, embed_dim)

        if index is not None:
            emb = emb.new_zeros(B * T, self.embed_dim).index_copy(0, index, emb)
        return emb.view(B, T, self.embed_dim)
