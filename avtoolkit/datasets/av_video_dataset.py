"""A list of video (or audio) files read through an audio-visual pipeline.

Annotation file: one input per line, ``path [label ...]``.  Fields are
separated by a tab if the line has one (paths may then contain spaces),
otherwise by white space, in which case the trailing integer fields are the
labels and everything before them is the path.  Blank lines and lines
starting with ``#`` are ignored.  Paths are relative to
``data_prefix['video']`` unless absolute.  A line without a label gives an
unlabelled sample (self-supervised pretraining)::

    videos/abc.mp4 12
    videos/def.mp4
    videos/ghi.mp4 3 7 41          # multi-label (multi_class=True)

The file is read as UTF-8 (:mod:`avtoolkit.datasets.text_files`); a line
that cannot be parsed raises an error naming the file and the line.

Bad inputs follow :class:`~avtoolkit.datasets.bad_input.BadInputPolicy`
(argument ``bad_input``; default: skip and count in training, raise in test
mode).  A skipped sample is replaced by a random other one and its record is
attached to the returned sample (``data_samples.metainfo['bad_inputs']``).
Entries whose file is missing at load time (or is a directory) are left out
and counted (skip mode: logged once, and reported to the bad-input totals
with the first sample each process returns, counted once per job) or raise
``FileNotFoundError`` naming them (raise mode).  A list whose entries are
*all* missing, or that has no entry, raises in both modes, naming the list,
the folder the paths were looked up in and the number of entries.
"""
import hashlib
import logging
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmaction.datasets import BaseActionDataset
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from avtoolkit.registry import DATASETS
from .bad_input import BadInputPolicy, attach_records
from .text_files import AnnotationError, read_lines
from .transforms.sequence_pipeline import as_step_list


def parse_list_line(line: str) -> Optional[tuple]:
    """``(path, [labels])`` of one annotation line, or None to ignore it."""
    line = line.rstrip('\r\n')
    if not line.strip() or line.lstrip().startswith('#'):
        return None
    if '\t' in line:
        fields = [f.strip() for f in line.split('\t') if f.strip()]
        path, rest = fields[0], fields[1:]
        try:
            labels = [int(x) for f in rest for x in f.split()]
        except ValueError as e:
            raise ValueError(f'non-integer label in line {line!r}') from e
        return path, labels
    tokens = line.split()
    labels: List[int] = []
    while len(tokens) > 1:
        try:
            labels.insert(0, int(tokens[-1]))
        except ValueError:
            break
        tokens.pop()
    return ' '.join(tokens), labels


def read_video_list(ann_file: str) -> List[tuple]:
    """All ``(path, [labels])`` entries of a list file (UTF-8), in order."""
    out = []
    for number, line in enumerate(read_lines(ann_file, 'list file'), 1):
        try:
            parsed = parse_list_line(line)
        except ValueError as e:
            raise AnnotationError(f'list file "{ann_file}", line {number}: '
                                  f'{e}') from e
        if parsed is not None:
            out.append(parsed)
    return out


@DATASETS.register_module()
class AVVideoDataset(BaseActionDataset):
    """Videos from a list file, each passed through an audio-visual pipeline.

    Args:
        ann_file: the list file (see the module docstring).
        pipeline: transforms (a list, or one step such as an
            ``AVSequencePipeline``), typically ``AVInit``, ``AVSampleClips``,
            ``AVDecode``, crops/flip, ``VideoNormalize``, ``FormatShape``,
            ``LogMelSpectrogram``, ``AudioNormalize``, ``PackAVInputs``.
        data_prefix: ``dict(video=FOLDER)``, prepended to relative paths.
        test_mode: evaluation mode (the default bad-input policy raises).
        multi_class: labels are sets of classes (one-hot targets of
            ``num_classes``).
        num_classes: number of classes (required with ``multi_class``).
        bad_input: policy (``None``, ``'skip'``, ``'raise'`` or a dict of
            :class:`BadInputPolicy` arguments).
        check_files: drop (and count) list entries whose file is missing
            when the list is loaded.
        **kwargs: passed to ``mmengine.dataset.BaseDataset``
            (``indices``, ``serialize_data``, ``lazy_init``, ...).
    """

    def __init__(self,
                 ann_file: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_prefix: dict = dict(video=''),
                 test_mode: bool = False,
                 multi_class: bool = False,
                 num_classes: Optional[int] = None,
                 bad_input=None,
                 check_files: bool = True,
                 **kwargs):
        if multi_class and not num_classes:
            raise ValueError('multi_class needs num_classes')
        self.policy = BadInputPolicy.build(bad_input, test_mode)
        self.check_files = check_files
        self.missing_files: List[str] = []
        # The report of the entries left out at load time, delivered with
        # the first sample this process returns (see filter_missing).
        self._load_records: List[dict] = []
        super().__init__(ann_file, pipeline=as_step_list(pipeline),
                         data_prefix=data_prefix, test_mode=test_mode,
                         multi_class=multi_class, num_classes=num_classes,
                         **kwargs)

    # ------------------------------------------------------------ loading
    def _video_path(self, path: str) -> str:
        prefix = self.data_prefix.get('video', '') or ''
        return path if osp.isabs(path) or not prefix else osp.join(
            prefix, path)

    def load_data_list(self) -> List[dict]:
        data_list = []
        for path, labels in read_video_list(self.ann_file):
            info = dict(filename=self._video_path(path))
            if labels:
                if self.multi_class:
                    info['label'] = labels
                elif len(labels) == 1:
                    info['label'] = labels[0]
                else:
                    raise ValueError(
                        f'{self.ann_file}: {path} has {len(labels)} labels; '
                        'set multi_class=True for multi-label lists')
            data_list.append(info)
        return self.filter_missing(data_list)

    def _where(self) -> str:
        """How messages name the list and the folder of its paths."""
        prefix = self.data_prefix.get('video', '') or ''
        listed = f'"{self.ann_file}"' if self.ann_file else \
            'the annotations'
        return (f'{listed} (paths looked up under data_prefix '
                f'"{prefix}")' if prefix else
                f'{listed} (no data_prefix: paths taken as written)')

    def filter_missing(self, data_list: List[dict]) -> List[dict]:
        """Drop entries whose file does not exist or is a directory
        (``check_files``).

        Raises ``FileNotFoundError`` when the list is empty or every entry
        is missing, and in raise mode when any is.  In skip mode the
        missing entries are logged once and reported as one keyed record
        (see :meth:`__getitem__`)."""
        if not data_list:
            raise FileNotFoundError(
                f'no entry in {self._where()}: check ann_file')
        if not self.check_files:
            return data_list
        kept, missing, folders = [], [], []
        for info in data_list:
            name = info['filename']
            if osp.isfile(name):
                kept.append(info)
            else:
                missing.append(name)
                if osp.isdir(name):
                    folders.append(name)
        self.missing_files = missing
        if not missing:
            return kept
        examples = missing[:5]
        msg = (f'{len(missing)} of {len(data_list)} entries of '
               f'{self._where()} are not files (' +
               (f'{len(folders)} are directories; ' if folders else '') +
               f'e.g. {", ".join(examples)})')
        if not kept:
            raise FileNotFoundError(
                msg + '. Nothing is left to read: check data_root, '
                'data_prefix and ann_file (the paths of the list are joined '
                'with data_prefix unless absolute).')
        if not self.policy.skips:
            raise FileNotFoundError(msg)
        digest = hashlib.sha1('\n'.join(missing).encode()).hexdigest()[:16]
        record = dict(reason='unreadable', source=str(self.ann_file),
                      detail=msg[:300], count=len(missing),
                      examples=examples,
                      key=f'list-entries:{self.ann_file}:{digest}')
        self._load_records = [record]
        self.policy.counter.add('unreadable', str(self.ann_file),
                                count=len(missing), examples=examples)
        print_log(msg + '; they are left out and counted as "unreadable".',
                  logger='current', level=logging.WARNING)
        return kept

    def get_data_info(self, idx: int) -> dict:
        """The annotation of ``idx`` (labels as one-hot float vectors with
        ``multi_class``; unlabelled entries stay without ``label``)."""
        info = BaseDataset.get_data_info(self, idx)
        info['modality'] = self.modality
        info['start_index'] = self.start_index
        if self.multi_class and 'label' in info:
            onehot = torch.zeros(self.num_classes)
            onehot[torch.as_tensor(info['label'], dtype=torch.long)] = 1.0
            info['label'] = onehot
        return info

    # ------------------------------------------------------------ samples
    def _source(self, idx: int) -> str:
        try:
            return str(self.get_data_info(idx).get('filename', idx))
        except Exception:
            return f'index {idx}'

    def __getitem__(self, idx: int) -> dict:
        """The prepared sample ``idx``; bad inputs are skipped (replaced by a
        random other index, the skip recorded in the returned sample) or
        raised, as the policy says."""
        if not self._fully_initialized:
            self.full_init()
        # The list entries left out at load time reach the bad-input
        # totals with the first sample of every process; their record is
        # keyed, so the totals count them once.
        loaded, self._load_records = self._load_records, []
        records = []
        current = idx
        for _ in range(self.policy.max_retries):
            try:
                data = self.prepare_data(current)
                if data is None:
                    raise RuntimeError('the pipeline returned None')
            except Exception as exc:  # classified by the policy
                records.append(self.policy.handle(exc, self._source(current)))
                current = int(np.random.randint(0, len(self)))
                continue
            return attach_records(data, loaded + records)
        raise self.policy.too_many(records)
