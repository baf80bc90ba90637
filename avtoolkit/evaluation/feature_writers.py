"""Writers of extracted features: one ``.npy`` file per feature, or
WebDataset shards, each with an ``index.json``.

Every file is written under a temporary name and renamed into place when
complete (:mod:`avtoolkit.utils.atomic`): a ``.npy`` array or a shard at
:meth:`close` of its writer, ``index.json`` last; :meth:`abort` removes the
temporary files of a failed extraction.
"""
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from avtoolkit.utils.atomic import (atomic_path, atomic_write,
                                    remove_temp_files, write_json_atomic)

INDEX_FILE = 'index.json'
# The files the writers own in an output folder (base names).
OUTPUT_NAMES = r'index\.json|.+\.npy|.+\.tar'


def check_output_dir(out_dir: str, overwrite: bool = False) -> None:
    """Refuse to write into a folder that already holds files, unless
    ``overwrite`` (then the folder's previous feature files are removed)."""
    if osp.isfile(out_dir):
        raise FileExistsError(f'{out_dir} is a file, not a folder')
    existing = sorted(os.listdir(out_dir)) if osp.isdir(out_dir) else []
    if existing and not overwrite:
        raise FileExistsError(
            f'{out_dir} already holds {len(existing)} entries (e.g. '
            f'{existing[:3]}); pass --overwrite to replace them or choose '
            'another --out')
    if existing:
        for name in existing:
            path = osp.join(out_dir, name)
            if osp.isfile(path) and (name == INDEX_FILE or name.endswith(
                    ('.npy', '.tar'))):
                os.remove(path)
        # temporary files of an interrupted extraction
        remove_temp_files(out_dir, OUTPUT_NAMES)
    os.makedirs(out_dir, exist_ok=True)


class NpyFeatureWriter:
    """One ``<name>.npy`` file per feature, ``(N, ...)`` float32 in sample
    order, plus ``index.json`` (``{'features': {name: shape}, 'samples':
    [{'row', 'sample_idx', 'filename', 'label'}, ...]}``).

    With ``num_samples`` known the arrays are written through memory maps as
    batches arrive; otherwise batches are kept in memory until
    :meth:`close`.
    """

    def __init__(self, out_dir: str, num_samples: Optional[int] = None):
        self.out_dir = out_dir
        self.num_samples = num_samples
        self._maps: Dict[str, np.ndarray] = {}
        self._pending: Dict[str, object] = {}  # name -> atomic_path context
        self._chunks: Dict[str, List[np.ndarray]] = {}
        self.samples: List[dict] = []

    def _open_map(self, name: str, shape: tuple) -> np.ndarray:
        """A memory map of ``name.npy`` at its temporary path."""
        context = atomic_path(osp.join(self.out_dir, f'{name}.npy'))
        tmp = context.__enter__()
        self._pending[name] = context
        return np.lib.format.open_memmap(tmp, mode='w+', dtype=np.float32,
                                         shape=shape)

    def write(self, arrays: Dict[str, np.ndarray], metas: List[dict]) -> None:
        start = len(self.samples)
        end = start + len(metas)
        if self.num_samples is not None and end > self.num_samples:
            raise ValueError(f'more samples than the {self.num_samples} '
                             'announced')
        for name, value in arrays.items():
            if self.num_samples is None:
                self._chunks.setdefault(name, []).append(value)
                continue
            if name not in self._maps:
                self._maps[name] = self._open_map(
                    name, (self.num_samples, ) + value.shape[1:])
            self._maps[name][start:end] = value
        for i, meta in enumerate(metas):
            self.samples.append(dict(meta, row=start + i))

    def close(self) -> dict:
        shapes = {}
        if self.num_samples is not None and len(self.samples) != \
                self.num_samples:
            raise RuntimeError(f'wrote {len(self.samples)} samples, expected '
                               f'{self.num_samples}')
        for name, mm in self._maps.items():
            mm.flush()
            shapes[name] = list(mm.shape)
        self._maps = {}
        for name in list(self._pending):  # rename into place
            self._pending.pop(name).__exit__(None, None, None)
        for name, chunks in self._chunks.items():
            array = np.concatenate(chunks).astype(np.float32, copy=False)
            with atomic_write(osp.join(self.out_dir, f'{name}.npy'),
                              'wb') as f:
                np.save(f, array)
            shapes[name] = list(array.shape)
        self._chunks = {}
        index = dict(format='npy', features=shapes, samples=self.samples)
        write_json_atomic(osp.join(self.out_dir, INDEX_FILE), index,
                          indent=1)
        return index

    def abort(self) -> None:
        """Drop what was written (temporary files removed)."""
        self._maps = {}
        self._chunks = {}
        for name in list(self._pending):
            error = RuntimeError('feature extraction aborted')
            self._pending.pop(name).__exit__(RuntimeError, error, None)


class WebDatasetFeatureWriter:
    """Tar shards ``features-%06d.tar`` of ``shard_size`` samples; sample
    ``<key>`` holds ``<key>.<name>.npy`` per feature and ``<key>.json``
    (``sample_idx``, ``filename``, ``label``).  ``index.json`` lists the
    shards and feature shapes."""

    def __init__(self, out_dir: str, shard_size: int = 1000):
        import webdataset as wds
        if shard_size < 1:
            raise ValueError('shard_size must be positive')
        self.out_dir = out_dir
        self._pending: Dict[str, tuple] = {}  # shard -> (context, file)
        self._writer = wds.ShardWriter(
            osp.join(out_dir, 'features-%06d.tar'), maxcount=shard_size,
            verbose=0, opener=self._open_shard, post=self._finish_shard)
        self.shapes: Dict[str, List[int]] = {}
        self.count = 0

    def _open_shard(self, path: str):
        """The file of a shard, at its temporary path."""
        context = atomic_write(path, 'wb')
        self._pending[path] = (context, context.__enter__())
        return self._pending[path][1]

    def _finish_shard(self, path: str) -> None:
        """Rename a written shard into place (``post`` of the writer)."""
        context, _ = self._pending.pop(path)
        context.__exit__(None, None, None)

    def write(self, arrays: Dict[str, np.ndarray], metas: List[dict]) -> None:
        for i, meta in enumerate(metas):
            record = {'__key__': f'{self.count:09d}', 'json': meta}
            for name, value in arrays.items():
                record[f'{name}.npy'] = np.ascontiguousarray(value[i])
                self.shapes[name] = list(value.shape[1:])
            self._writer.write(record)
            self.count += 1

    def close(self) -> dict:
        self._writer.close()
        shards = sorted(f for f in os.listdir(self.out_dir)
                        if f.endswith('.tar'))
        index = dict(format='webdataset', num_samples=self.count,
                     features={k: [self.count] + v
                               for k, v in self.shapes.items()},
                     shards=shards)
        write_json_atomic(osp.join(self.out_dir, INDEX_FILE), index,
                          indent=1)
        return index

    def abort(self) -> None:
        """Drop the shard being written (its temporary file removed)."""
        stream = getattr(self._writer, 'tarstream', None)
        if stream is not None:  # end the tar stream before its file goes
            self._writer.tarstream = None
            stream.close()
        for path in list(self._pending):
            context, _ = self._pending.pop(path)
            error = RuntimeError('feature extraction aborted')
            context.__exit__(RuntimeError, error, None)
