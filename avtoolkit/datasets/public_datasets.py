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

Every file is read as UTF-8 through :mod:`avtoolkit.datasets.text_files`:
a missing CSV column, a row without a value where one is needed, a label
that is not in the class list or bytes that are not UTF-8 raise an error
naming the file and the line.  Labels and class names are compared after
stripping the white space around them.
"""
import csv
import logging
import os
from abc import abstractmethod
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Union

from mmengine.logging import print_log

from avtoolkit.registry import DATASETS
from .av_video_dataset import AVVideoDataset, read_video_list
from .text_files import (AnnotationError, clean_label, nearest, read_csv_rows,
                         read_lines)

# What read_kinetics_csv does with a row whose label is not a known class.
UNKNOWN_LABEL_POLICIES = ('error', 'drop', 'keep')

MEDIA_SUFFIXES = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.flv',
                  '.wav', '.flac', '.mp3', '.ogg')


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _number(value: str, path: str, line: int, column: str,
            kind=float, what: str = 'CSV file'):
    """``kind(value)`` or an error naming the file, line and column."""
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise AnnotationError(
            f'{what} "{path}", line {line}: column {column!r} holds '
            f'{value!r}, not a number') from None


def read_class_names(classes: Union[None, str, Sequence[str]]) -> \
        Optional[List[str]]:
    """A class list from a list of names or a file (one name per line;
    UCF101-style ``index name`` lines are accepted too).  Names are
    stripped of surrounding white space; a name given twice is an error."""
    if classes is None:
        return None
    if isinstance(classes, str):
        names = []
        for line in read_lines(classes, 'class list'):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            head, _, tail = line.partition(' ')
            names.append(tail.strip() if head.isdigit() and tail else line)
    else:
        names = [clean_label(c) for c in classes]
    twice = sorted(n for n, c in Counter(names).items() if c > 1)
    if twice:
        where = f'"{classes}"' if isinstance(classes, str) else 'classes'
        raise AnnotationError(f'class list {where} names {twice} more than '
                              'once')
    return names


# ------------------------------------------------------------------ ESC-50
def read_esc50(csv_file: str, audio_dir: str = '',
               folds: Optional[Sequence[int]] = None) -> List[dict]:
    """ESC-50 clips of the given folds (all five by default)."""
    folds = set(int(f) for f in folds) if folds is not None else None
    out = []
    for line, row in read_csv_rows(
            csv_file, ('filename', 'fold', 'target'), 'ESC-50 CSV',
            optional=('category', )):
        fold = _number(row['fold'], csv_file, line, 'fold', int,
                       'ESC-50 CSV')
        if folds is not None and fold not in folds:
            continue
        out.append(dict(filename=_join(audio_dir, row['filename'].strip()),
                        label=_number(row['target'], csv_file, line,
                                      'target', int, 'ESC-50 CSV'),
                        fold=fold, category=row.get('category') or ''))
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
    for number, line in enumerate(read_lines(class_index, 'class index'), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(
                f'class index "{class_index}", line {number}: expected '
                f'"<number> <class name>", got {line!r}')
        index[parts[1]] = int(parts[0]) - 1
    out = []
    for number, line in enumerate(read_lines(list_file, 'UCF101 list'), 1):
        parts = line.split()
        if not parts:
            continue
        path = parts[0]
        folder = path.replace('\\', '/').split('/')[0]
        if folder not in index:
            close = nearest(folder, index)
            raise AnnotationError(
                f'UCF101 list "{list_file}", line {number}: unknown class '
                f'folder {folder!r} (not in {class_index}' +
                (f'; nearest: {close}' if close else '') + ')')
        label = index[folder]
        if len(parts) > 1 and _number(parts[1], list_file, number, 'label',
                                      int, 'UCF101 list') - 1 != label:
            raise AnnotationError(
                f'UCF101 list "{list_file}", line {number}: {path} has '
                f'label {parts[1]} but classInd gives {label + 1} for '
                f'{folder}')
        out.append(dict(filename=_join(video_dir, path), label=label))
    return out


# ---------------------------------------------------------------- Kinetics
KINETICS_TEMPLATE = '{youtube_id}_{time_start:06d}_{time_end:06d}.mp4'


def read_kinetics_csv(csv_file: str, video_dir: str = '',
                      classes: Union[None, str, Sequence[str]] = None,
                      filename_tmpl: str = KINETICS_TEMPLATE,
                      keep_unknown: bool = False,
                      unknown_labels: Optional[str] = None) -> List[dict]:
    """Kinetics-400/600/700 CSV rows (``label,youtube_id,time_start,
    time_end,split``; the test CSV has no ``label`` column).

    Args:
        classes: fixed class order (list or file); default: the sorted
            labels of this CSV.
        filename_tmpl: file name under ``video_dir``; fields
            ``label``, ``youtube_id``, ``time_start``, ``time_end`` (ints)
            and ``split``.  Videos in class folders:
            ``'{label}/' + KINETICS_TEMPLATE``.
        unknown_labels: what a row whose label is not in ``classes`` does:
            ``'error'`` (default): raise :class:`AnnotationError` naming
            the file, the line, the label and the nearest known classes
            (a typo must not shrink an evaluation set);
            ``'drop'``: leave the row out (a full Kinetics CSV read for a
            subset of its classes, e.g. Kinetics-Sounds); ``'keep'``: keep
            it without a label.  Dropped and kept rows are logged with
            their count per label.
        keep_unknown: the former switch, the same as
            ``unknown_labels='keep'``.

    Labels and class names are compared after stripping the white space
    around them, so a trailing space in the CSV or the class list is not an
    unknown label; a difference in case or inner spacing is.
    """
    if unknown_labels is None:
        unknown_labels = 'keep' if keep_unknown else 'error'
    if unknown_labels not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(f'unknown_labels must be one of '
                         f'{UNKNOWN_LABEL_POLICIES}, got {unknown_labels!r}')
    what = 'Kinetics CSV'
    rows = read_csv_rows(csv_file, ('youtube_id', 'time_start', 'time_end'),
                         what, optional=('label', 'split'))
    names = read_class_names(classes)
    if names is None:
        names = sorted({clean_label(r.get('label')) for _, r in rows} - {''})
    index = {n: i for i, n in enumerate(names)}
    out, unknown = [], {}
    for line, r in rows:
        fields = dict(label=clean_label(r.get('label')),
                      youtube_id=r['youtube_id'].strip(),
                      time_start=_number(r['time_start'], csv_file, line,
                                         'time_start', int, what),
                      time_end=_number(r['time_end'], csv_file, line,
                                       'time_end', int, what),
                      split=clean_label(r.get('split')))
        info = dict(filename=_join(video_dir,
                                   filename_tmpl.format(**fields)),
                    youtube_id=fields['youtube_id'])
        label = fields['label']
        if label:
            if label in index:
                info['label'] = index[label]
            else:
                if unknown_labels == 'error':
                    close = nearest(label, names)
                    source = f'"{classes}"' if isinstance(classes, str) \
                        else 'classes'
                    raise AnnotationError(
                        f'{what} "{csv_file}", line {line}: label '
                        f'{label!r} is not one of the {len(names)} classes '
                        f'of {source}' +
                        (f'; nearest: {close}' if close else '') +
                        '. Fix the label, or, if the CSV holds other '
                        "classes on purpose, set unknown_labels='drop' "
                        "(or 'keep' to keep such rows unlabelled).")
                unknown.setdefault(label, []).append(line)
                if unknown_labels == 'drop':
                    continue
        out.append(info)
    if unknown:
        count = sum(len(v) for v in unknown.values())
        shown = sorted(unknown.items(), key=lambda kv: -len(kv[1]))[:5]
        parts = []
        for label, lines in shown:
            close = nearest(label, names, 1)
            parts.append(f'{label!r} x{len(lines)} (line {lines[0]}' +
                         (f'; nearest class {close[0]!r}' if close else '') +
                         ')')
        action = 'left out' if unknown_labels == 'drop' else \
            'kept without a label'
        print_log(f'{what} "{csv_file}": {count} rows of {len(unknown)} '
                  f'labels outside the {len(names)} classes are {action} '
                  f"(unknown_labels='{unknown_labels}'): "
                  + ', '.join(parts) + (', ...' if len(unknown) > 5 else ''),
                  logger='current', level=logging.WARNING)
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
    what = 'Charades CSV'
    for line, row in read_csv_rows(csv_file, ('id', ), what,
                                   optional=('actions', 'length')):
        try:
            segments = parse_charades_actions(row.get('actions') or '')
        except ValueError as e:
            raise AnnotationError(f'{what} "{csv_file}", line {line}: '
                                  f'{e}') from None
        video_id = row['id'].strip()
        info = dict(filename=_join(video_dir, f'{video_id}.{ext}'),
                    label=sorted({c for c, _, _ in segments}),
                    segments=segments, video_id=video_id)
        if row.get('length') and row['length'].strip():
            info['length'] = _number(row['length'], csv_file, line,
                                     'length', float, what)
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
    mids = {clean_label(r['mid']): _number(r['index'], class_index, line,
                                           'index', int, 'AudioSet classes')
            for line, r in read_csv_rows(class_index, ('index', 'mid'),
                                         'AudioSet classes',
                                         optional=('display_name', ))}
    out = []
    what = 'AudioSet CSV'
    numbered = [(n, ln) for n, ln in enumerate(
        read_lines(csv_file, what), 1)
        if ln.strip() and not ln.lstrip().startswith('#')]
    rows = csv.reader([ln for _, ln in numbered], skipinitialspace=True)
    for (line, _), row in zip(numbered, rows):
        if len(row) < 4:
            raise AnnotationError(
                f'{what} "{csv_file}", line {line}: {len(row)} fields, '
                'expected 4 (YTID, start_seconds, end_seconds, '
                'positive_labels)')
        ytid, labels = row[0].strip(), row[3]
        start = _number(row[1], csv_file, line, 'start_seconds', float, what)
        end = _number(row[2], csv_file, line, 'end_seconds', float, what)
        unknown = [m for m in labels.split(',') if m.strip()
                   and m.strip() not in mids]
        if unknown:
            raise AnnotationError(
                f'{what} "{csv_file}", line {line}: {ytid} has labels '
                f'{unknown} missing from {class_index}')
        fields = dict(ytid=ytid, start=start, end=end,
                      start_ms=int(round(start * 1000)),
                      end_ms=int(round(end * 1000)))
        out.append(dict(filename=_join(video_dir,
                                       filename_tmpl.format(**fields)),
                        label=sorted({mids[m.strip()]
                                      for m in labels.split(',')
                                      if m.strip()}),
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
    order).

    ``unknown_labels`` (CSV only, see :func:`read_kinetics_csv`):
    ``'error'`` (default) refuses a row whose label is not one of
    ``classes``, naming the file, line, label and the nearest classes;
    set ``'drop'`` to read a full Kinetics CSV, whose other classes are
    then left out (their count is logged)."""

    def __init__(self, *args, classes=None,
                 filename_tmpl: str = KINETICS_TEMPLATE,
                 unknown_labels: str = 'error', **kwargs):
        if unknown_labels not in UNKNOWN_LABEL_POLICIES:
            raise ValueError(f'unknown_labels must be one of '
                             f'{UNKNOWN_LABEL_POLICIES}, got '
                             f'{unknown_labels!r}')
        self.classes, self.filename_tmpl = classes, filename_tmpl
        self.unknown_labels = unknown_labels
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
                                     self._classes(), self.filename_tmpl,
                                     unknown_labels=self.unknown_labels)
        out = []
        for path, labels in read_video_list(self.ann_file):
            if len(labels) != 1:
                raise AnnotationError(f'list file "{self.ann_file}": {path} '
                                      'needs exactly one label')
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
    :func:`read_kinetics_csv` for ``classes``, ``filename_tmpl`` and
    ``unknown_labels`` (default: ``'keep'`` rows of other classes without a
    label in training, where labels are not used; ``'error'`` in test
    mode)."""

    def __init__(self, *args, classes=None,
                 filename_tmpl: str = KINETICS_TEMPLATE,
                 unknown_labels: Optional[str] = None, **kwargs):
        if unknown_labels is not None and \
                unknown_labels not in UNKNOWN_LABEL_POLICIES:
            raise ValueError(f'unknown_labels must be one of '
                             f'{UNKNOWN_LABEL_POLICIES}, got '
                             f'{unknown_labels!r}')
        self.classes, self.filename_tmpl = classes, filename_tmpl
        self.unknown_labels = unknown_labels
        super().__init__(*args, **kwargs)

    def _read(self):
        classes = self._rooted(self.classes) if isinstance(
            self.classes, str) else self.classes
        policy = self.unknown_labels or ('error' if self.test_mode
                                         else 'keep')
        return read_kinetics_csv(self.ann_file, self._video_dir, classes,
                                 self.filename_tmpl, unknown_labels=policy)


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
