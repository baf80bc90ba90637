"""Writers of extracted features: one ``.npy`` file per feature, or
WebDataset shards, each with an ``index.json``."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

INDEX_FILE = 'index.json'


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
        self._chunks: Dict[str, List[np.ndarray]] = {}
        self.samples: List[dict] = []

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
                self._maps[name] = np.lib.format.open_memmap(
                    osp.join(self.out_dir, f'{name}.npy'), mode='w+',
                    dtype=np.float32,
                    shape=(self.num_samples, ) + value.shape[1:])
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
        for name, chunks in self._chunks.items():
            array = np.concatenate(chunks).astype(np.float32, copy=False)
            np.save(osp.join(self.out_dir, f'{name}.npy'), array)
            shapes[name] = list(array.shape)
        self._chunks = {}
        index = dict(format='npy', features=shapes, samples=self.samples)
        with open(osp.join(self.out_dir, INDEX_FILE), 'w') as f:
            json.dump(index, f, indent=1)
        return index


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
        self._writer = wds.ShardWriter(
            osp.join(out_dir, 'features-%06d.tar'), maxcount=shard_size,
            verbose=0)
        self.shapes: Dict[str, List[int]] = {}
        self.count = 0

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
        with open(osp.join(self.out_dir, INDEX_FILE), 'w') as f:
            json.dump(index, f, indent=1)
        return index
