"""The AVBERT pretraining algorithm: encoder + MEP and CPP objectives."""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from avtoolkit.models.structures import AVOutputs
from avtoolkit.models.utils import make_derangement
from avtoolkit.registry import MODELS, NEGATIVE_SAMPLERS, TASK_UTILS

from .avbert_encoder import AVBERTEncoder

# MEP streams and CPP classifiers each fusion mode can train.
_FUSION_OBJECTIVES = {
    'mid': (('v', 'a', 'av'), ('uni', 'multi')),
    'early': (('av', ), ('multi', )),
    'late': (('v', 'a'), ('uni', )),
}


def check_cpp_batches(model_cfg, dataloader_cfg) -> None:
    """Refuse a pretraining configuration whose dataloader can hand the CPP
    head a batch of a single sequence.

    ``model_cfg`` is the ``model`` section, ``dataloader_cfg`` the
    ``train_dataloader`` one (dicts or ConfigDicts).  Nothing is checked
    for models without a CPP head.  The batches are safe when
    ``batch_size >= 2`` and either ``drop_last=True`` or the sampler is an
    ``InfiniteSampler`` (whose epochs never end).  An iterable dataset
    (``sampler=None``, e.g. ``AVWebDataset``) ends an epoch in every worker
    with an incomplete batch unless ``drop_last`` is set.

    Raises:
        ValueError: naming ``train_dataloader.batch_size`` or
            ``train_dataloader.drop_last``.
    """
    if not model_cfg or not model_cfg.get('cpp_head') or \
            model_cfg.get('type') not in ('AVBERT', 'avtoolkit.AVBERT'):
        return
    if not dataloader_cfg:
        return
    batch = dataloader_cfg.get('batch_size', 1)
    if batch is None or int(batch) < 2:
        raise ValueError(
            f'train_dataloader.batch_size is {batch}, but correct pair '
            'prediction (model.cpp_head) needs at least two sequences per '
            'batch: set train_dataloader.batch_size >= 2.')
    sampler = dataloader_cfg.get('sampler') or {}
    endless = str(sampler.get('type', '')).endswith('InfiniteSampler')
    if not dataloader_cfg.get('drop_last', False) and not endless:
        raise ValueError(
            'train_dataloader.drop_last is not set, so the last batch of an '
            'epoch may hold a single sequence (skipped bad inputs change '
            'the number of samples; an iterable dataset ends an epoch with '
            'an incomplete batch in every DataLoader worker), which correct '
            'pair prediction (model.cpp_head) cannot use: set '
            'train_dataloader.drop_last=True.')


@MODELS.register_module()
class AVBERT(AVBERTEncoder):
    """Self-supervised pretraining of AVBERT (paper section 2.1).

    One training step:

    1. the CNNs embed every clip: ``x_v``, ``x_a`` (B, T, D);
    2. ``mask_generator`` picks the masked clip positions (B, T), the same in
       both modalities (appendix B.3);
    3. the neck contextualises the masked sequences; with a multimodal CPP
       classifier it also runs the multimodal Transformer on the mismatched
       pairs ``[w_v(b) ; w_a(perm[b])]`` in the same batched call, ``perm`` a
       derangement of the batch;
    4. the sampler draws K negatives per clip from the CNN embeddings of the
       mini-batch (one call per modality) and returns the candidate pool it
       drew them from;
    5. ``mep_head`` returns ``loss_mep_{v,a,av}`` and ``cpp_head``
       ``loss_cpp_{uni,multi}``, with accuracies ``acc_*``; both read the
       :class:`AVOutputs` of step 3.

    The random draws of a step come in this order: mask, ``perm``, the
    neck's dropout, the visual then audio negatives, the CPP positions.
    ``perm`` is drawn here only; the heads take it.

    mmengine sums every ``loss*`` entry; the paper's balance ``alpha`` is
    ``cpp_head.loss_weight`` (default 1).  Accuracies are logged, not summed.

    Args:
        neck, visual_backbone, audio_backbone, data_preprocessor, init_cfg:
            as :class:`AVBERTEncoder` (both backbones are required).
        sampler: config of a negative sampler (``NEGATIVE_SAMPLERS``).
        mep_head: config of ``MEPHead``; its ``streams`` must be ones the
            fusion produces (mid: v, a, av; early: av; late: v, a).
        cpp_head: config of ``CPPHead`` or None to train MEP only.
        mask_generator: config of a ``TASK_UTILS`` mask generator; the
            ``type`` defaults to ``'MaskGenerator'`` (ratio 0.15,
            ``mode='fixed'``, at least one masked clip per sequence).
    """

    def __init__(self,
                 neck: dict,
                 visual_backbone: dict,
                 audio_backbone: dict,
                 sampler: dict,
                 mep_head: dict,
                 cpp_head: Optional[dict] = None,
                 mask_generator: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if visual_backbone is None or audio_backbone is None:
            raise ValueError('AVBERT pretraining needs both a visual and an '
                             'audio backbone')
        super().__init__(
            neck=neck,
            visual_backbone=visual_backbone,
            audio_backbone=audio_backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.sampler = NEGATIVE_SAMPLERS.build(sampler)
        self.mep_head = MODELS.build(mep_head)
        self.cpp_head = MODELS.build(cpp_head) if cpp_head else None
        self.mask_generator = TASK_UTILS.build(
            dict(dict(type='MaskGenerator'), **(mask_generator or {})))
        fusion = self.neck.fusion
        streams, classifiers = _FUSION_OBJECTIVES[fusion]
        for what, key, asked, possible in (
                ('MEP streams', 'mep_head.streams', self.mep_head.streams,
                 streams),
                ('CPP classifiers', 'cpp_head.classifiers',
                 self.cpp_head.classifiers if self.cpp_head else (),
                 classifiers)):
            extra = set(asked) - set(possible)
            if extra:
                raise ValueError(
                    f'{fusion} fusion has no output for {what} '
                    f'{sorted(extra)}; set {key} to a subset of {possible}')

    @property
    def _needs_mismatched_pass(self) -> bool:
        return self.cpp_head is not None and \
            'multi' in self.cpp_head.classifiers

    def encode(self, video: Tensor,
               audio: Tensor) -> Tuple[Tensor, Tensor]:
        """CNN embeddings of every clip.

        Args:
            video: (B, T, C, F, H, W); audio: (B, T, 1, mel, frames).

        Returns:
            ``(x_v, x_a)``, each (B, T, D).
        """
        return (self._encode('video', self.visual_backbone, video),
                self._encode('audio', self.audio_backbone, audio))

    def sample_step(self, batch: int, length: int, device: torch.device
                    ) -> Tuple[Tensor, Optional[Tensor]]:
        """The random choices of one step: the MEP mask (B, T) bool, and the
        derangement ``perm`` (B,) that forms the mismatched CPP pairs (None
        without CPP).  This is the only place ``perm`` is drawn."""
        mask = self.mask_generator(batch, length, device=device)
        return mask, self._draw_perm(batch, device)

    def _draw_perm(self, batch: int,
                   device: torch.device) -> Optional[Tensor]:
        if self.cpp_head is None:
            return None
        if batch < 2:
            raise ValueError(
                f'correct pair prediction needs at least two sequences per '
                f'batch, got {batch} (mismatched pairs come from other '
                'videos of the batch). Set train_dataloader.batch_size >= 2 '
                'and train_dataloader.drop_last=True: without drop_last the '
                'last batch of an epoch may hold a single sequence (skipped '
                'bad inputs change how many samples an epoch has; with an '
                'iterable dataset such as AVWebDataset every DataLoader '
                'worker ends its share of the epoch with its own last '
                'batch).')
        return make_derangement(batch, device=device)

    def contextualise(self, x_v: Tensor, x_a: Tensor, mask: Tensor,
                      perm: Optional[Tensor]) -> AVOutputs:
        """The Transformers on the masked sequences; with a multimodal CPP
        classifier also the multimodal Transformer on the mismatched pairs
        ``[w_v(b) ; w_a(perm[b])]``, in the same batched call.

        Args:
            x_v, x_a: (B, T, D) CNN embeddings; mask: (B, T) bool;
            perm: (B,) derangement, or None without CPP.
        """
        mismatch = perm if self._needs_mismatched_pass else None
        return self.neck(x_v, x_a, mask=mask, mismatch_perm=mismatch)

    def forward_pretrain(self,
                         video: Tensor,
                         audio: Tensor,
                         mask: Optional[Tensor] = None,
                         perm: Optional[Tensor] = None
                         ) -> Tuple[AVOutputs, Optional[Tensor]]:
        """CNNs and Transformers of one training step:
        :meth:`encode`, :meth:`sample_step` (for what is not given) and
        :meth:`contextualise`.

        Args:
            video: (B, T, C, F, H, W); audio: (B, T, 1, mel, frames).
            mask: (B, T) bool masked positions; drawn when None.
            perm: (B,) derangement for the mismatched pairs; drawn when None
                and the model has a CPP head.

        Returns:
            ``(outputs, perm)``: :class:`AVOutputs` with the unmasked
            ``x_v``/``x_a``, the outputs of the masked pass, ``mask`` and, if
            needed, ``z_mismatched``; and the permutation used (or None).
        """
        x_v, x_a = self.encode(video, audio)
        batch, length = x_v.shape[:2]
        if mask is None:
            mask = self.mask_generator(batch, length, device=x_v.device)
        if perm is None:
            perm = self._draw_perm(batch, x_v.device)
        return self.contextualise(x_v, x_a, mask, perm), perm

    def loss(self, inputs: Dict[str, Tensor], data_samples=None,
             mask: Optional[Tensor] = None,
             padding_mask: Optional[Tensor] = None,
             **kwargs) -> Dict[str, Tensor]:
        """Every MEP and CPP term (weighted) and their accuracies."""
        if padding_mask is not None:
            raise ValueError('AVBERT pretraining takes fixed-length '
                             'sequences; padding_mask is not supported')
        missing = [k for k in ('video', 'audio') if k not in inputs]
        if missing:
            raise ValueError(f'AVBERT pretraining needs inputs {missing}')
        outputs, perm = self.forward_pretrain(inputs['video'],
                                              inputs['audio'], mask)
        return self.head_losses(outputs, perm)

    def head_losses(self, out: AVOutputs,
                    perm: Optional[Tensor]) -> Dict[str, Tensor]:
        """The MEP and CPP terms of one step's outputs.

        Args:
            out: the outputs of :meth:`forward_pretrain`.
            perm: the permutation it returned (None without CPP).
        """
        losses = self.mep_loss(out)
        if self.cpp_head is not None:
            losses.update(self.cpp_head.loss(out, perm))
        return losses

    def mep_loss(self, out: AVOutputs) -> Dict[str, Tensor]:
        """MEP terms of the masked pass ``out``; the negatives (and the pool
        they index, gathered across ranks if the sampler does) are drawn
        here, visual first."""
        negatives, pools = {}, {}
        for modality, x in (('v', out.x_v), ('a', out.x_a)):
            negatives[modality], pools[modality] = self.sampler(x)
        return self.mep_head.loss(out, negatives, pools)
