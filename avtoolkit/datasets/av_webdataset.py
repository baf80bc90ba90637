"""Streaming audio-visual samples from tar shards (WebDataset format).

Shard layout (written by ``tools/data/build_shards.py``): every sample is a
pair of tar members sharing a key, ``<key>.<ext>`` (the media bytes; ``ext``
is ``mp4`` for re-encoded copies, the original extension otherwise) and
``<key>.json`` (``{"source": ..., "label": ..., "duration": ...}``).  The
shard folder also holds ``index.json`` with the number of samples per shard.

Each epoch reads every shard once across ranks and DataLoader workers, in
an order fixed by (seed, epoch); :meth:`AVWebDataset.position_after` and
:meth:`AVWebDataset.set_position` resume inside an epoch without decoding
the skipped records.  docs/data_preparation.md ("How shards are streamed")
gives the order, the epoch length and what resuming reproduces exactly.
"""
import collections
import glob
import itertools
import json
import math
import os.path as osp
import random
from typing import Callable, Iterator, List, Optional, Sequence, Union

import torch
import webdataset as wds
from mmengine.dataset import Compose
from webdataset.utils import pytorch_worker_info

from avtoolkit.registry import DATASETS
from .bad_input import BadInputError, BadInputPolicy, attach_records
from .transforms.sequence_pipeline import as_step_list

INDEX_FILE = 'index.json'
MEDIA_EXTENSIONS = ('mp4', 'avi', 'mkv', 'webm', 'mov', 'm4v', 'flv', 'mpg',
                    'mpeg', 'wav', 'flac', 'mp3', 'ogg', 'm4a', 'aac')


def read_shard_index(path: str) -> dict:
    """The ``index.json`` of a shard folder (or the file itself)."""
    if osp.isdir(path):
        path = osp.join(path, INDEX_FILE)
    with open(path) as f:
        index = json.load(f)
    if 'shards' not in index:
        raise ValueError(f'{path} is not a shard index (no "shards")')
    return index


def expand_shard_urls(urls: Union[str, Sequence[str]]) -> List[str]:
    """Shard URLs from a folder with ``index.json``, brace patterns
    (``data/shard-{000000..000099}.tar``), local globs, ``pipe:`` commands or
    a list of any of those."""
    if isinstance(urls, (list, tuple)):
        out = []
        for u in urls:
            out.extend(expand_shard_urls(u))
        return out
    urls = str(urls)
    if osp.isdir(urls):
        index = read_shard_index(urls)
        return [osp.join(urls, s['name']) for s in index['shards']]
    out = []
    for url in wds.shardlists.expand_urls(urls):
        if not url.startswith('pipe:') and any(c in url for c in '*?['):
            matches = sorted(glob.glob(url))
            if not matches:
                raise FileNotFoundError(f'no shard matches {url}')
            out.extend(matches)
        else:
            out.append(url)
    return out


def _media_key(sample: dict) -> Optional[str]:
    for ext in MEDIA_EXTENSIONS:
        if ext in sample:
            return ext
    return None


@DATASETS.register_module()
class AVWebDataset(torch.utils.data.IterableDataset):
    """Audio-visual samples streamed from tar shards.

    Args:
        urls: shard folder (with ``index.json``), brace pattern, glob,
            ``pipe:`` URL or a list of them.
        pipeline: the same transforms as for :class:`AVVideoDataset`
            (``AVInit`` reads ``video_bytes``).
        num_samples: samples per epoch over the whole job (default: from
            the shard index; required for ``len()`` without an index).
        index_file: shard index to read sample counts from (default:
            ``urls/index.json`` when ``urls`` is a folder).
        shuffle_buffer: records in the per-worker shuffle buffer (0: none).
        shuffle_initial: records collected before the first one is yielded
            (default: ``shuffle_buffer``).
        shard_shuffle: permute the shard order every epoch.
        seed: base seed of both shuffles.
        test_mode: evaluation (no shuffling; bad inputs raise by default).
        bad_input: bad-input policy, see :class:`BadInputPolicy`.
        multi_class, num_classes: labels as one-hot vectors of
            ``num_classes`` (multi-label data).
        resend_tail: the skip records carried by the last ``resend_tail``
            samples of a worker's epoch are sent again with the first
            sample of its next epoch (with a key, so that
            :class:`~avtoolkit.datasets.bad_input.BadInputCounter` counts
            them once): with ``drop_last`` the DataLoader drops the
            incomplete last batch of every worker, and the records with
            it.  Keep it >= ``batch_size - 1``; 0 disables it.  Records
            not yet attached when an epoch ends go with the next epoch's
            first sample too.  Both need the dataset copy to live on
            (``persistent_workers=True`` or no worker processes).
    """

    def __init__(self,
                 urls: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 num_samples: Optional[int] = None,
                 index_file: Optional[str] = None,
                 shuffle_buffer: int = 1000,
                 shuffle_initial: Optional[int] = None,
                 shard_shuffle: bool = True,
                 seed: int = 0,
                 test_mode: bool = False,
                 bad_input=None,
                 multi_class: bool = False,
                 num_classes: Optional[int] = None,
                 resend_tail: int = 64):
        super().__init__()
        if int(resend_tail) < 0:
            raise ValueError(f'resend_tail must be >= 0, got {resend_tail}')
        self.resend_tail = int(resend_tail)
        self.urls = expand_shard_urls(urls)
        if not self.urls:
            raise ValueError(f'no shards in {urls!r}')
        self.pipeline = Compose(as_step_list(pipeline))
        self.test_mode = test_mode
        self.shuffle_buffer = 0 if test_mode else int(shuffle_buffer)
        self.shuffle_initial = self.shuffle_buffer if shuffle_initial is None \
            else min(int(shuffle_initial), self.shuffle_buffer)
        self.shard_shuffle = shard_shuffle and not test_mode
        self.seed = int(seed)
        self.policy = BadInputPolicy.build(bad_input, test_mode)
        if multi_class and not num_classes:
            raise ValueError('multi_class needs num_classes')
        self.multi_class, self.num_classes = multi_class, num_classes

        if index_file is None and isinstance(urls, str) and osp.isdir(urls):
            index_file = osp.join(urls, INDEX_FILE)
        self.shard_sizes = None
        if index_file is not None:
            index = read_shard_index(index_file)
            by_name = {s['name']: int(s['num_samples'])
                       for s in index['shards']}
            sizes = [by_name.get(osp.basename(u)) for u in self.urls]
            if all(s is not None for s in sizes):
                self.shard_sizes = sizes
            if num_samples is None:
                num_samples = int(index.get('num_samples', sum(
                    by_name.get(osp.basename(u), 0) for u in self.urls)))
        self.num_samples = int(num_samples) if num_samples is not None \
            else None
        self.epoch = 0
        self._skip: Optional[List[int]] = None
        self._carry: List[dict] = []

    # -------------------------------------------------------------- epochs
    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError('AVWebDataset has no length: pass num_samples or '
                            'a shard folder with index.json')
        _, world_size, _, _ = pytorch_worker_info()
        return math.ceil(self.num_samples / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch``."""
        self.epoch = int(epoch)

    def set_position(self, epoch: int, skip: Sequence[int],
                     first_worker: int = 0) -> None:
        """Start the next iteration at ``epoch``, continuing the streams of
        the interrupted run: DataLoader worker ``w`` takes over the stream
        of worker ``(w + first_worker) % num_workers`` of that run (a new
        DataLoader asks worker 0 first, the interrupted one would have asked
        ``first_worker``) and drops its first ``skip[...]`` raw records.
        The arguments are what :meth:`position_after` returns."""
        self.epoch = int(epoch)
        self._skip = ([int(s) for s in skip], int(first_worker))

    def shard_order(self, epoch: int) -> List[str]:
        """The shard URLs of ``epoch`` before splitting by rank/worker."""
        urls = list(self.urls)
        if self.shard_shuffle:
            random.Random(f'{self.seed}-{epoch}').shuffle(urls)
        return urls

    def worker_shards(self, epoch: int, rank: int, world_size: int,
                      worker: int, num_workers: int) -> List[str]:
        """The shards that one worker of one rank reads in ``epoch`` (the
        same split as ``split_by_node`` + ``split_by_worker``)."""
        mine = self.shard_order(epoch)[rank::world_size]
        return mine[worker::num_workers]

    def position_after(self, iterations: int, batch_size: int,
                       num_workers: int, drop_last: bool = False,
                       start_epoch: int = 0) -> tuple:
        """``(epoch, skip, first_worker)`` after ``iterations`` batches on
        this rank since the start of ``start_epoch``: ``skip[w]`` raw records
        consumed by worker ``w``, ``first_worker`` the worker the DataLoader
        would have asked next.  Needs the shard sizes of the index."""
        if self.shard_sizes is None:
            raise ValueError('position_after needs the shard sizes of '
                             'index.json')
        size = dict(zip(self.urls, self.shard_sizes))
        rank, world_size, _, _ = pytorch_worker_info()
        workers = max(1, int(num_workers))
        epoch, left = int(start_epoch), int(iterations)
        while True:
            counts = [
                sum(size[u] for u in self.worker_shards(
                    epoch, rank, world_size, w, workers))
                for w in range(workers)
            ]
            batches = [c // batch_size if drop_last else
                       math.ceil(c / batch_size) for c in counts]
            if sum(batches) == 0:
                raise ValueError(f'rank {rank} gets no batch in an epoch')
            if left < sum(batches):
                break
            left -= sum(batches)
            epoch += 1
        taken, w = [0] * workers, 0
        for _ in range(left):  # DataLoader: in-order round robin
            while taken[w] >= batches[w]:
                w = (w + 1) % workers
            taken[w] += 1
            w = (w + 1) % workers
        while taken[w] >= batches[w]:  # the worker asked next
            w = (w + 1) % workers
        skip = [min(t * batch_size, c) for t, c in zip(taken, counts)]
        return epoch, skip, w

    # ----------------------------------------------------------- iteration
    def _to_results(self, sample: dict, url: Optional[str] = None) -> dict:
        """The pipeline's input for one tar record.  Its ``filename`` is
        ``SHARD#KEY``; its ``input_name``, which every error about the
        sample names, adds ``(source: PATH)``, the video the shard builder
        stored in ``<key>.json``."""
        url = url or sample.get('__url__') or '?'
        key = sample.get('__key__', '?')
        name = f'{url}#{key}'
        ext = _media_key(sample)
        if ext is None:
            raise BadInputError('unreadable', name,
                                'no media member in the record (members: '
                                f'{sorted(k for k in sample if k[0] != "_")})')
        meta = {}
        if 'json' in sample:
            try:
                meta = json.loads(sample['json'])
            except ValueError as e:
                raise BadInputError('unreadable', name,
                                    f'bad json member: {e}') from e
        source = meta.get('source') if isinstance(meta, dict) else None
        results = dict(video_bytes=sample[ext], filename=name, key=key,
                       shard=url, source=source,
                       input_name=f'{name} (source: {source})' if source
                       else name)
        label = meta.get('label')
        if label is not None:
            if self.multi_class:
                onehot = torch.zeros(self.num_classes)
                onehot[torch.as_tensor(label, dtype=torch.long)] = 1.0
                label = onehot
            results['label'] = label
        return results

    def __iter__(self) -> Iterator[dict]:
        epoch = self.epoch
        self.epoch += 1
        resume, self._skip = self._skip, None
        rank, world_size, worker, num_workers = pytorch_worker_info()
        role, skip = worker, 0  # role: the stream this worker produces
        if resume is not None:
            skip_list, first_worker = resume
            role = (worker + first_worker) % num_workers
            skip = skip_list[role] if role < len(skip_list) else 0
        # Records not yet attached to a sample when the previous epoch of
        # this process ended (no valid sample followed them).
        pending: List[dict] = self._carry
        self._carry = []
        known = set(self.urls)
        reading = dict(url=None)  # the shard webdataset opened last

        def shard_error(exn: Exception) -> bool:
            # webdataset appends the URL to the arguments of some errors
            # only (not to those of a member or of the grouping by key):
            # fall back to the shard being read.
            source = next((a for a in reversed(exn.args)
                           if isinstance(a, str) and a in known),
                          None) or reading['url'] or '?'
            detail = str(exn.args[0]) if exn.args else type(exn).__name__
            err = BadInputError('unreadable_shard', source, detail)
            pending.append(self.policy.handle(err, err.source))
            return True

        def track(shards):
            for shard in shards:
                reading['url'] = shard['url']
                yield shard

        src = iter([dict(url=u) for u in self.shard_order(epoch)])
        src = wds.split_by_node(src)
        if role == worker:
            src = wds.split_by_worker(src)
        else:  # resuming: this worker continues another worker's stream
            src = itertools.islice(src, role, None, num_workers)
        records = wds.tarfile_to_samples(handler=shard_error)(track(src))
        if self.shuffle_buffer > 1:
            rng = random.Random(f'{self.seed}-{epoch}-{rank}-{role}')
            records = wds.shuffle(self.shuffle_buffer, self.shuffle_initial,
                                  rng=rng)(iter(records))
        failures: List[dict] = []
        # (sample number in this epoch, records) of the last samples that
        # carried skip records:
        # a DataLoader with drop_last may drop them in the incomplete last
        # batch of this worker, so they are sent again, keyed (counted
        # once), with the first sample of the next epoch.
        tail = collections.deque()
        yielded = 0

        def emit(out, n):
            """``out`` with every record pending now attached."""
            nonlocal pending, yielded
            sent, pending = pending, []
            if sent and self.resend_tail:
                sent = [r if 'key' in r else dict(
                    r, key=f'{r.get("source")}@{self.seed}:{epoch}:'
                           f'{rank}:{role}:{n}:{j}')
                        for j, r in enumerate(sent)]
                tail.append((yielded, sent))
            yielded += 1
            while tail and tail[0][0] < yielded - self.resend_tail:
                tail.popleft()
            return attach_records(out, sent)

        # Each sample is held back until the next one is ready, so that the
        # records of inputs skipped after the last good sample of the
        # stream still reach the main process, with that last sample (they
        # used to wait for an epoch that a one-epoch read never starts).
        held = None
        try:
            for n, sample in enumerate(records):
                if n < skip:
                    continue  # fast-forward: read, not decoded
                url = sample.get('__url__') or reading['url']
                name = f'{url}#{sample.get("__key__")}'
                try:
                    results = self._to_results(sample, url)
                    name = results['input_name']
                    out = self.pipeline(results)
                    if out is None:
                        raise RuntimeError('the pipeline returned None')
                except Exception as exc:
                    rec = self.policy.handle(exc, name)
                    pending.append(rec)
                    failures.append(rec)
                    if len(failures) >= self.policy.max_retries:
                        raise self.policy.too_many(failures)
                    continue
                failures = []
                if held is not None:
                    yield emit(*held)
                held = (out, n)
            if held is not None:
                last, held = held, None
                yield emit(*last)
        finally:
            # Records of the end of this epoch go with the first sample of
            # the next one in this process (persistent workers, or no
            # worker processes).
            again = [r for _, recs in tail for r in recs]
            self._carry = again + pending + self._carry

    def __repr__(self):
        return (f'{self.__class__.__name__}(shards={len(self.urls)}, '
                f'num_samples={self.num_samples}, '
                f'shuffle_buffer={self.shuffle_buffer}, seed={self.seed})')

