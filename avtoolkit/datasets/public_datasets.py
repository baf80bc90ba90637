"""Readers of the official annotation formats of downstream and pretraining
datasets.

Each reader is a plain function returning a data list (dicts with
``filename`` and, when known, ``label``), and a registered subclass of
:class:`AVVideoDataset` uses it, so configs can name the dataset type
directly.  Paths are joined with ``data_prefix['video']`` (which mmengine
has already joined with ``data_root``); files missing on disk are dropped
and counted by :meth:`AVVideoDataset.filter_missing`.

=====================  ====================================================
dataset type           annotation (official download)
=====================  ====================================================
``ESC50Dataset``       ``meta/esc50.csv``: filename,fold,target,category,...
                       (audio in ``audio/``); ``folds`` selects folds 1-5
``UCF101Dataset``      ``ucfTrainTestlist/trainlist0{1,2,3}.txt`` or
                       ``testlist0{1,2,3}.txt`` with ``classInd.txt``
``KineticsSoundsDataset``  class folders, a list file or a Kinetics CSV
                       restricted to ``classes``
``CharadesDataset``    ``Charades_v1_{train,test}.csv`` (``actions`` =
                       ``c092 11.90 21.20;c147 0.00 12.60``), multi-label
``Kinetics700Dataset`` ``{train,validate,test}.csv``:
                       label,youtube_id,time_start,time_end,split
``AudioSetDataset``    segment CSVs (``YTID, start_seconds, end_seconds,
                       positive_labels``) with ``class_labels_indices.csv``
=====================  ====================================================
"""
import csv
import os
from abc import abstractmethod
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.fileio import get_local_path

from avtoolkit.registry import DATASETS
from .av_video_dataset import AVVideoDataset, read_video_list

MEDIA_SUFFIXES = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.flv',
                  '.wav', '.flac', '.mp3', '.ogg')


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _read_text(path: str) -> List[str]:
    with get_local_path(path) as local, open(local, encoding='utf-8') as f:
        return f.read().splitlines()


def read_class_names(classes: Union[None, str, Sequence[str]]) -> \
        Optional[List[str]]:
    """A class list from a list of names or a file (one name per line;
    UCF101-style ``index name`` lines are accepted too)."""
    if classes is None:
        return None
    if isinstance(classes, str):
        names = []
        for line in _read_text(classes):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            head, _, tail = line.partition(' ')
            names.append(tail.strip() if head.isdigit() and tail else line)
        return names
    return [str(c) for c in classes]


# ------------------------------------------------------------------ ESC-50
def read_esc50(csv_file: str, audio_dir: str = '',
               folds: Optional[Sequence[int]] = None) -> List[dict]:
    """ESC-50 clips of the given folds (all five by default)."""
    folds = set(int(f) for f in folds) if folds is not None else None
    out = []
    with get_local_path(csv_file) as local, open(local, newline='') as f:
        for row in csv.DictReader(f):
            fold = int(row['fold'])
            if folds is not None and fold not in folds:
                continue
            out.append(dict(filename=_join(audio_dir, row['filename']),
                            label=int(row['target']), fold=fold,
                            category=row['category']))
    if not out:
        raise ValueError(f'{csv_file}: no clip in folds {sorted(folds)}')
    return out


# ------------------------------------------------------------------ UCF101
def read_ucf101(list_file: str, video_dir: str = '',
                class_index: Optional[str] = None) -> List[dict]:
    """UCF101 train or test list; labels (0-based) come from ``classInd.txt``
    (default: beside the list) by the class folder of each path, and a
    label given in a train list must agree with it."""
    class_index = class_index or osp.join(osp.dirname(list_file),
                                          'classInd.txt')
    index: Dict[str, int] = {}
    for line in _read_text(class_index):
        if line.strip():
            num, name = line.split()
            index[name] = int(num) - 1
    out = []
    for line in _read_text(list_file):
        parts = line.split()
        if not parts:
            continue
        path = parts[0]
        folder = path.replace('\\', '/').split('/')[0]
        if folder not in index:
            raise ValueError(f'{list_file}: unknown class folder {folder!r}')
        label = index[folder]
        if len(parts) > 1 and int(parts[1]) - 1 != label:
            raise ValueError(f'{list_file}: {path} has label {parts[1]} but '
                             f'classInd gives {label + 1} for {folder}')
        out.append(dict(filename=_join(video_dir, path), label=label))
    return out


# ---------------------------------------------------------------- Kinetics
KINETICS_TEMPLATE = '{youtube_id}_{time_start:06d}_{time_end:06d}.mp4'


def read_kinetics_csv(csv_file: str, video_dir: str = '',
                      classes: Union[None, str, Sequence[str]] = None,
                      filename_tmpl: str = KINETICS_TEMPLATE,
                      keep_unknown: bool = False) -> List[dict]:
    """Kinetics-400/600/700 CSV rows (``label,youtube_id,time_start,
    time_end,split``; the test CSV has no ``label`` column).

    Args:
        classes: fixed class order (list or file); default: the sorted
            labels of this CSV.  Rows of other classes are dropped unless
            ``keep_unknown`` (then they are unlabelled).
        filename_tmpl: file name under ``video_dir``; fields
            ``label``, ``youtube_id``, ``time_start``, ``time_end`` (ints)
            and ``split``.  Videos in class folders:
            ``'{label}/' + KINETICS_TEMPLATE``.
    """
    with get_local_path(csv_file) as local, open(local, newline='') as f:
        rows = list(csv.DictReader(f))
    names = read_class_names(classes)
    if names is None:
        names = sorted({r['label'] for r in rows if r.get('label')})
    index = {n: i for i, n in enumerate(names)}
    out = []
    for r in rows:
        fields = dict(label=r.get('label', ''), youtube_id=r['youtube_id'],
                      time_start=int(float(r['time_start'])),
                      time_end=int(float(r['time_end'])),
                      split=r.get('split', ''))
        info = dict(filename=_join(video_dir,
                                   filename_tmpl.format(**fields)),
                    youtube_id=fields['youtube_id'])
        if fields['label']:
            if fields['label'] in index:
                info['label'] = index[fields['label']]
            elif not keep_unknown:
                continue
        out.append(info)
    return out


def read_class_folders(video_dir: str,
                       classes: Union[None, str, Sequence[str]] = None
                       ) -> List[dict]:
    """``video_dir/<class name>/<file>`` with labels in the order of
    ``classes`` (default: sorted folder names)."""
    names = read_class_names(classes)
    if names is None:
        names = sorted(d for d in os.listdir(video_dir)
                       if osp.isdir(osp.join(video_dir, d)))
    out = []
    for label, name in enumerate(names):
        folder = osp.join(video_dir, name)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'class folder {folder} does not exist')
        for fname in sorted(os.listdir(folder)):
            if fname.lower().endswith(MEDIA_SUFFIXES):
                out.append(dict(filename=osp.join(folder, fname),
                                label=label))
    return out


# ---------------------------------------------------------------- Charades
def parse_charades_actions(actions: str) -> List[tuple]:
    """``'c092 11.90 21.20;c147 0.00 12.60'`` -> ``[(92, 11.9, 21.2),
    (147, 0.0, 12.6)]``."""
    out = []
    for item in (actions or '').split(';'):
        item = item.strip()
        if not item:
            continue
        parts = item.split()
        if len(parts) != 3 or not parts[0].startswith('c'):
            raise ValueError(f'bad Charades action {item!r}')
        out.append((int(parts[0][1:]), float(parts[1]), float(parts[2])))
    return out


def read_charades(csv_file: str, video_dir: str = '',
                  ext: str = 'mp4') -> List[dict]:
    """Charades videos with their set of action classes (``label``, sorted
    class indices) and time-stamped ``segments`` ``(class, start, end)``."""
    out = []
    with get_local_path(csv_file) as local, open(local, newline='') as f:
        for row in csv.DictReader(f):
            segments = parse_charades_actions(row.get('actions', ''))
            info = dict(filename=_join(video_dir, f'{row["id"]}.{ext}'),
                        label=sorted({c for c, _, _ in segments}),
                        segments=segments, video_id=row['id'])
            if row.get('length'):
                info['length'] = float(row['length'])
            out.append(info)
    return out


# ---------------------------------------------------------------- AudioSet
AUDIOSET_TEMPLATE = '{ytid}.mp4'


def read_audioset_csv(csv_file: str, class_index: str, video_dir: str = '',
                      filename_tmpl: str = AUDIOSET_TEMPLATE) -> List[dict]:
    """AudioSet segments (``YTID, start_seconds, end_seconds,
    positive_labels``; ``#`` lines are comments) with label indices from
    ``class_labels_indices.csv`` (``index,mid,display_name``).

    ``filename_tmpl`` fields: ``ytid``, ``start``, ``end`` (float seconds),
    ``start_ms``, ``end_ms`` (ints).
    """
    with get_local_path(class_index) as local, open(local, newline='') as f:
        mids = {r['mid']: int(r['index']) for r in csv.DictReader(f)}
    out = []
    lines = [ln for ln in _read_text(csv_file)
             if ln.strip() and not ln.lstrip().startswith('#')]
    for row in csv.reader(lines, skipinitialspace=True):
        ytid, start, end, labels = row[0], float(row[1]), float(row[2]), \
            row[3]
        unknown = [m for m in labels.split(',') if m and m not in mids]
        if unknown:
            raise ValueError(f'{csv_file}: {ytid} has labels {unknown} '
                             f'missing from {class_index}')
        fields = dict(ytid=ytid, start=start, end=end,
                      start_ms=int(round(start * 1000)),
                      end_ms=int(round(end * 1000)))
        out.append(dict(filename=_join(video_dir,
                                       filename_tmpl.format(**fields)),
                        label=sorted({mids[m] for m in labels.split(',')
                                      if m}),
                        youtube_id=ytid, segment=(start, end)))
    return out


# ---------------------------------------------------------------- datasets
class _ReaderDataset(AVVideoDataset):
    """An :class:`AVVideoDataset` whose data list comes from a reader."""

    @abstractmethod
    def _read(self) -> List[dict]:
        """The data list from the annotation files."""

    def _rooted(self, path: Optional[str]) -> Optional[str]:
        """``path`` under ``data_root`` when it is relative."""
        if not path or osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def load_data_list(self) -> List[dict]:
        data = self._read()
        for info in data:
            label = info.get('label')
            if isinstance(label, list) and not self.multi_class:
                raise ValueError(f'{type(self).__name__} gives multi-label '
                                 'annotations; set multi_class=True and '
                                 'num_classes')
        return self.filter_missing(data)

    @property
    def _video_dir(self) -> str:
        return self.data_prefix.get('video', '') or ''


@DATASETS.register_module()
class ESC50Dataset(_ReaderDataset):
    """ESC-50 (``ann_file='meta/esc50.csv'``,
    ``data_prefix=dict(video='audio')``, ``folds=[1, 2, 3, 4]``).  Use an
    audio-only pipeline (``AVInit(modalities=('audio',))``)."""

    def __init__(self, *args, folds: Optional[Sequence[int]] = None,
                 **kwargs):
        self.folds = folds
        super().__init__(*args, **kwargs)

    def _read(self):
        return read_esc50(self.ann_file, self._video_dir, self.folds)


@DATASETS.register_module()
class UCF101Dataset(_ReaderDataset):
    """UCF101 (``ann_file='ucfTrainTestlist/trainlist01.txt'``,
    ``data_prefix=dict(video='UCF-101')``; ``class_index`` defaults to
    ``classInd.txt`` beside the list)."""

    def __init__(self, *args, class_index: Optional[str] = None, **kwargs):
        self.class_index = class_index
        super().__init__(*args, **kwargs)

    def _read(self):
        return read_ucf101(self.ann_file, self._video_dir,
                           self._rooted(self.class_index))


@DATASETS.register_module()
class KineticsSoundsDataset(_ReaderDataset):
    """Kinetics-Sounds from class folders under ``data_prefix['video']``
    (``ann_file=''``), a list file (``path label``) or a Kinetics CSV
    restricted to ``classes`` (list or file, which also fixes the label
    order)."""

    def __init__(self, *args, classes=None,
                 filename_tmpl: str = KINETICS_TEMPLATE, **kwargs):
        self.classes, self.filename_tmpl = classes, filename_tmpl
        super().__init__(*args, **kwargs)

    def _classes(self):
        return self._rooted(self.classes) if isinstance(
            self.classes, str) else self.classes

    def _read(self):
        if not self.ann_file:
            return read_class_folders(self._video_dir, self._classes())
        if self.ann_file.endswith('.csv'):
            if self.classes is None:
                raise ValueError('a Kinetics CSV needs the Kinetics-Sounds '
                                 'classes')
            return read_kinetics_csv(self.ann_file, self._video_dir,
                                     self._classes(), self.filename_tmpl)
        out = []
        for path, labels in read_video_list(self.ann_file):
            if len(labels) != 1:
                raise ValueError(f'{self.ann_file}: {path} needs exactly one '
                                 'label')
            out.append(dict(filename=_join(self._video_dir, path),
                            label=labels[0]))
        return out


@DATASETS.register_module()
class CharadesDataset(_ReaderDataset):
    """Charades (``ann_file='Charades_v1_train.csv'``,
    ``data_prefix=dict(video='Charades_v1_480')``), multi-label over 157
    classes."""

    def __init__(self, *args, ext: str = 'mp4', multi_class: bool = True,
                 num_classes: int = 157, **kwargs):
        self.ext = ext
        super().__init__(*args, multi_class=multi_class,
                         num_classes=num_classes, **kwargs)

    def _read(self):
        return read_charades(self.ann_file, self._video_dir, self.ext)


@DATASETS.register_module()
class Kinetics700Dataset(_ReaderDataset):
    """Kinetics-700 from its CSV (``ann_file='train.csv'``); see
    :func:`read_kinetics_csv` for ``classes`` and ``filename_tmpl``."""

    def __init__(self, *args, classes=None,
                 filename_tmpl: str = KINETICS_TEMPLATE, **kwargs):
        self.classes, self.filename_tmpl = classes, filename_tmpl
        super().__init__(*args, **kwargs)

    def _read(self):
        classes = self._rooted(self.classes) if isinstance(
            self.classes, str) else self.classes
        return read_kinetics_csv(self.ann_file, self._video_dir, classes,
                                 self.filename_tmpl, keep_unknown=True)


@DATASETS.register_module()
class AudioSetDataset(_ReaderDataset):
    """AudioSet segments (``ann_file='balanced_train_segments.csv'``,
    ``class_index='class_labels_indices.csv'``), multi-label over 527
    classes."""

    def __init__(self, *args, class_index: str = '',
                 filename_tmpl: str = AUDIOSET_TEMPLATE,
                 multi_class: bool = True, num_classes: int = 527,
                 **kwargs):
        if not class_index:
            raise ValueError('AudioSetDataset needs class_index '
                             '(class_labels_indices.csv)')
        self.class_index, self.filename_tmpl = class_index, filename_tmpl
        super().__init__(*args, multi_class=multi_class,
                         num_classes=num_classes, **kwargs)

    def _read(self):
        return read_audioset_csv(self.ann_file,
                                 self._rooted(self.class_index),
                                 self._video_dir, self.filename_tmpl)
