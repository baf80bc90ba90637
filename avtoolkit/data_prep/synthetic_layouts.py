"""Synthetic data in the on-disk layouts of the downstream datasets.

:func:`generate_synthetic_downstream` writes one of four layouts (``ucf101``,
``kinetics_sounds``, ``charades``, ``esc50``) from the synthetic
audio-visual generator, so that the readers of
:mod:`avtoolkit.datasets.public_datasets` and the downstream configs run end
to end on a CPU without downloading anything.  docs/downstream.md ("The
synthetic layouts") lists the files of each layout and how labels and splits
are derived.

The video layouts hard-link (or copy) the files of a synthetic dataset
generated in ``OUT/source``; the same parameters give the same files, and
``OUT/.synthetic_downstream.json`` marks the folder as this generator's.
"""
import csv
import io
import json
import math
import os
import os.path as osp
import re
import shutil
import string
import sys
import time
import wave
from typing import Dict, List, Optional, Sequence

import numpy as np

from avtoolkit.utils.checks import check_int
from avtoolkit.utils.atomic import (atomic_path, remove_temp_files,
                                    write_text_atomic)
from .synthetic_av import _read_json, generate_synthetic_av
from .synthetic_render import render_audio
from .synthetic_spec import (MAX_CLASSES, SyntheticAVConfig, class_specs,
                             sample_video_plan)

GENERATOR_NAME = 'avtoolkit.data_prep.synthetic_layouts'
FORMAT_VERSION = 2
MARKER_FILE = '.synthetic_downstream.json'
SUMMARY_FILE = 'summary.json'
SOURCE_DIR = 'source'
LAYOUTS = ('ucf101', 'kinetics_sounds', 'charades', 'esc50')
UCF_SPLITS = (1, 2, 3)
ESC_FOLDS = 5
LOUD_THRESHOLD = 0.85
HIGH_PITCH_SEMITONES = 1.0
# spawn keys of the random streams of each layout (fixed: changing them
# changes every generated layout)
_STREAM = {'ucf101': 11, 'kinetics_sounds': 12, 'charades': 13, 'esc50': 14}


# ==================================================================== params
def downstream_params(layout: str,
                      num_videos: int = 60,
                      seconds: int = 4,
                      num_classes: int = 6,
                      seed: int = 0,
                      height: int = 128,
                      width: int = 128,
                      fps: int = 16,
                      sample_rate: int = 16000,
                      test_fraction: float = 0.25,
                      num_groups: int = 4) -> dict:
    """The checked parameters of a layout as a JSON-serialisable dict."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    params = dict(
        layout=layout,
        num_videos=check_int('num_videos', num_videos, 1),
        seconds=check_int('seconds', seconds, 1, 3600),
        num_classes=check_int('num_classes', num_classes, 2,
                               MAX_CLASSES),
        seed=check_int('seed', seed, 0, 2**63 - 1),
        height=check_int('height', height, 32, 4096),
        width=check_int('width', width, 32, 4096),
        fps=check_int('fps', fps, 4, 120),
        sample_rate=check_int('sample_rate', sample_rate, 1),
        test_fraction=test_fraction,
        num_groups=check_int('num_groups', num_groups, 4, 100),
    )
    if isinstance(test_fraction, bool) or not isinstance(
            test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError('test_fraction must be a number in (0, 1), got '
                         f'{test_fraction!r}')
    params['test_fraction'] = float(test_fraction)
    # The generator's own checks (even frame size, AAC sample rates, ...).
    SyntheticAVConfig(
        num_videos=params['num_videos'], seconds=params['seconds'],
        num_classes=params['num_classes'], seed=params['seed'],
        height=params['height'], width=params['width'], fps=params['fps'],
        sample_rate=params['sample_rate'], val_fraction=0.0)
    per_class = params['num_videos'] // params['num_classes']
    if layout == 'ucf101' and per_class < params['num_groups']:
        raise ValueError(
            f'the ucf101 layout needs at least num_groups='
            f'{params["num_groups"]} videos per class, got num_videos='
            f'{params["num_videos"]} for {params["num_classes"]} classes')
    if layout in ('kinetics_sounds', 'charades') and per_class < 2:
        raise ValueError(f'the {layout} layout needs at least 2 videos per '
                         'class (one for training, one for testing)')
    if layout == 'esc50' and per_class < ESC_FOLDS:
        raise ValueError(f'the esc50 layout needs at least {ESC_FOLDS} clips '
                         'per class (one per fold)')
    return params


def ucf_test_groups(num_groups: int) -> Dict[int, List[int]]:
    """Groups (1-based) tested by each split: contiguous blocks of
    ``max(1, round(7 * num_groups / 25))`` groups, as UCF101's 1-7, 8-14,
    15-21 of 25."""
    block = max(1, int(round(7 * num_groups / 25)))
    if 3 * block >= num_groups:
        raise ValueError(f'num_groups={num_groups} leaves no group that is '
                         'always in training')
    return {k: list(range((k - 1) * block + 1, k * block + 1))
            for k in UCF_SPLITS}


# ================================================================ class names
def _unique(names: List[str], what: str) -> List[str]:
    out, seen = [], set()
    for i, name in enumerate(names):
        if name in seen:
            name = f'{name} {i}'
        seen.add(name)
        out.append(name)
    if len(set(out)) != len(out):
        raise RuntimeError(f'could not make unique {what} names')
    return out


def class_names(layout: str, num_classes: int) -> List[str]:
    """Class names of a layout, in label order, from the class recipes of
    the synthetic generator."""
    specs = class_specs(num_classes)
    if layout == 'ucf101':
        names = [''.join(w.capitalize() for w in
                         f'{s.colour} {s.shape} {s.motion}'.split())
                 for s in specs]
        return [n.replace(' ', '') for n in _unique(names, 'class')]
    if layout == 'kinetics_sounds':
        return _unique([f'{s.colour} {s.shape} {s.motion}' for s in specs],
                       'class')
    if layout == 'charades':
        return _unique([f'A {s.colour} {s.shape} moves ({s.motion})'
                        for s in specs], 'class') + \
            ['A loud event', 'A high-pitched event']
    if layout == 'esc50':
        return _unique([f'{s.timbre}_{s.pulses}_pulse_{s.pitch_hz:.0f}_hz'
                        for s in specs], 'class')
    raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')


# ====================================================================== I/O
def _csv_text(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _place(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (copy where links are not possible)."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if osp.isfile(dst):
        if osp.samefile(src, dst):
            return
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def _write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """Mono float audio in [-1, 1] as 16-bit PCM."""
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype('<i2')
    with atomic_path(path) as tmp:
        with wave.open(tmp, 'wb') as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(sample_rate)
            f.writeframes(pcm.tobytes())


def _rng(params: dict, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(
        params['seed'], spawn_key=(_STREAM[params['layout']], purpose)))


def _random_ids(rng: np.random.Generator, count: int, length: int,
                alphabet: str) -> List[str]:
    ids, seen = [], set()
    chars = np.array(list(alphabet))
    while len(ids) < count:
        name = ''.join(rng.choice(chars, length))
        if name not in seen:
            seen.add(name)
            ids.append(name)
    return ids


def _stratified_holdout(labels: Sequence[int], fraction: float,
                        rng: np.random.Generator) -> List[bool]:
    """True for the held-out members: ``round(fraction * n)`` of every class
    (at least one, never all)."""
    labels = np.asarray(labels)
    held = [False] * len(labels)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        k = min(max(1, int(round(fraction * n))), n - 1) if n > 1 else 0
        for i in rng.permutation(members)[:k]:
            held[int(i)] = True
    return held


def _progress(total: int, verbose: bool):
    if not verbose or total == 0:
        return None
    from mmengine.utils import ProgressBar
    return ProgressBar(total, file=sys.stdout)


# ================================================================ layouts
def _source_videos(out_dir: str, params: dict, workers: int, overwrite: bool,
                   verbose: bool) -> List[dict]:
    """The summary entries of the source videos, generated if needed."""
    summary = generate_synthetic_av(
        osp.join(out_dir, SOURCE_DIR),
        num_videos=params['num_videos'], seconds=params['seconds'],
        num_classes=params['num_classes'], seed=params['seed'],
        height=params['height'], width=params['width'], fps=params['fps'],
        sample_rate=params['sample_rate'], val_fraction=0.0,
        workers=workers, overwrite=overwrite, verbose=verbose)
    videos = sorted(summary['videos'], key=lambda v: v['name'])
    for video in videos:
        video['abs_path'] = osp.join(out_dir, SOURCE_DIR, video['path'])
    return videos


def _plan_ucf101(params: dict, videos: List[dict]) -> dict:
    names = class_names('ucf101', params['num_classes'])
    groups = params['num_groups']
    test_groups = ucf_test_groups(groups)
    links, entries = [], []
    for c, name in enumerate(names):
        members = [v for v in videos if v['label'] == c]
        for k, video in enumerate(members):
            group, clip = k % groups + 1, k // groups + 1
            rel = f'{name}/v_{name}_g{group:02d}_c{clip:02d}.mp4'
            links.append((video['abs_path'], f'videos/{rel}'))
            entries.append(dict(path=rel, label=c, group=group,
                                source=video['name']))
    texts = {'ucfTrainTestlist/classInd.txt':
             ''.join(f'{c + 1} {n}\n' for c, n in enumerate(names))}
    splits = {}
    for k in UCF_SPLITS:
        test = [e for e in entries if e['group'] in test_groups[k]]
        train = [e for e in entries if e['group'] not in test_groups[k]]
        texts[f'ucfTrainTestlist/trainlist0{k}.txt'] = ''.join(
            f'{e["path"]} {e["label"] + 1}\n' for e in train)
        texts[f'ucfTrainTestlist/testlist0{k}.txt'] = ''.join(
            f'{e["path"]}\n' for e in test)
        splits[f'split{k}'] = dict(train=len(train), test=len(test),
                                   test_groups=test_groups[k])
    return dict(links=links, texts=texts, wavs=[], splits=splits,
                classes=names)


def _plan_kinetics_sounds(params: dict, videos: List[dict]) -> dict:
    names = class_names('kinetics_sounds', params['num_classes'])
    rng = _rng(params, 0)
    ids = _random_ids(rng, len(videos), 11,
                      string.ascii_letters + string.digits + '-_')
    held = _stratified_holdout([v['label'] for v in videos],
                               params['test_fraction'], rng)
    end = params['seconds']
    links, rows = [], {'train': [], 'validate': []}
    for video, yid, is_test in zip(videos, ids, held):
        split = 'validate' if is_test else 'train'
        fname = f'{yid}_{0:06d}_{end:06d}.mp4'
        links.append((video['abs_path'], f'videos/{fname}'))
        rows[split].append([names[video['label']], yid, 0, end, split])
    header = ('label', 'youtube_id', 'time_start', 'time_end', 'split')
    texts = {f'{s}.csv': _csv_text(header, r) for s, r in rows.items()}
    texts['classes.txt'] = ''.join(n + '\n' for n in names)
    return dict(links=links, texts=texts, wavs=[], classes=names,
                splits={s: len(r) for s, r in rows.items()})


def charades_actions(video: dict, num_classes: int) -> List[tuple]:
    """``(class, start, end)`` actions of one source video (see the module
    docstring); ``video`` is an entry of the synthetic generator's
    summary."""
    spec = class_specs(num_classes)[video['label']]
    events = video['events']
    if not events:
        raise ValueError(f'video {video.get("name")} has no events')
    first = min(e['onset'] for e in events)
    last = max(e['onset'] + e['duration'] for e in events)
    actions = [(video['label'], first, last)]
    for e in events:
        end = e['onset'] + e['duration']
        if e['loudness'] >= LOUD_THRESHOLD:
            actions.append((num_classes, e['onset'], end))
        if 12 * math.log2(e['pitch_hz'] / spec.pitch_hz) > \
                HIGH_PITCH_SEMITONES:
            actions.append((num_classes + 1, e['onset'], end))
    return actions


def _plan_charades(params: dict, videos: List[dict]) -> dict:
    names = class_names('charades', params['num_classes'])
    rng = _rng(params, 0)
    ids = _random_ids(rng, len(videos), 5,
                      string.ascii_uppercase + string.digits)
    held = _stratified_holdout([v['label'] for v in videos],
                               params['test_fraction'], rng)
    header = ('id', 'subject', 'scene', 'quality', 'relevance', 'verified',
              'script', 'objects', 'descriptions', 'actions', 'length')
    links, rows = [], {'train': [], 'test': []}
    for video, vid, is_test in zip(videos, ids, held):
        links.append((video['abs_path'], f'Charades_v1_480/{vid}.mp4'))
        actions = ';'.join(
            f'c{c:03d} {start:.2f} {end:.2f}'
            for c, start, end in charades_actions(video,
                                                  params['num_classes']))
        rows['test' if is_test else 'train'].append([
            vid, 'SYNTH', 'Synthetic scene', 7, 7, 'Yes',
            names[video['label']], 'object', names[video['label']], actions,
            f'{params["seconds"]:.2f}'
        ])
    texts = {f'Charades_v1_{s}.csv': _csv_text(header, r)
             for s, r in rows.items()}
    texts['Charades_v1_classes.txt'] = ''.join(
        f'c{c:03d} {n}\n' for c, n in enumerate(names))
    return dict(links=links, texts=texts, wavs=[], classes=names,
                splits={s: len(r) for s, r in rows.items()})


def _plan_esc50(params: dict) -> dict:
    names = class_names('esc50', params['num_classes'])
    rng = _rng(params, 0)
    n, k = params['num_videos'], params['num_classes']
    labels = (np.arange(n) % k)[rng.permutation(n)]
    folds = np.zeros(n, dtype=int)
    for c in range(k):
        members = rng.permutation(np.flatnonzero(labels == c))
        folds[members] = np.arange(len(members)) % ESC_FOLDS + 1
    source_ids = 100000 + rng.permutation(900000)[:n]
    wavs, rows = [], []
    for i in range(n):
        fname = f'{folds[i]}-{source_ids[i]}-A-{labels[i]}.wav'
        wavs.append(dict(index=i, label=int(labels[i]),
                         path=f'audio/{fname}'))
        rows.append([fname, int(folds[i]), int(labels[i]), names[labels[i]],
                     'True' if labels[i] < 10 else 'False',
                     f'{source_ids[i]}.wav', 'A'])
    header = ('filename', 'fold', 'target', 'category', 'esc10',
              'src_file', 'take')
    rows.sort(key=lambda r: r[0])
    per_fold = {f'fold{f}': int((folds == f).sum())
                for f in range(1, ESC_FOLDS + 1)}
    return dict(links=[], wavs=wavs, classes=names, splits=per_fold,
                texts={'meta/esc50.csv': _csv_text(header, rows)})


def _planned_files(plan: dict) -> List[str]:
    return sorted([dst for _, dst in plan['links']] +
                  [w['path'] for w in plan['wavs']] + list(plan['texts']))


# ============================================================ ownership
def _is_complete(out_dir: str, params: dict) -> Optional[dict]:
    summary = _read_json(osp.join(out_dir, SUMMARY_FILE))
    if (summary is None or summary.get('generator') != GENERATOR_NAME
            or summary.get('format_version') != FORMAT_VERSION
            or summary.get('params') != params):
        return None
    for entry in summary.get('files', []):
        path = osp.join(out_dir, entry['path'])
        if not osp.isfile(path) or osp.getsize(path) != entry['bytes']:
            return None
    return summary if summary.get('files') else None


def _owned(out_dir: str) -> Optional[dict]:
    for name in (MARKER_FILE, SUMMARY_FILE):
        data = _read_json(osp.join(out_dir, name))
        if data is not None and data.get('generator') == GENERATOR_NAME:
            return data
    return None


def _inside(out_dir: str, rel: str) -> Optional[str]:
    path = osp.normpath(osp.join(out_dir, rel))
    return path if path.startswith(out_dir + os.sep) else None


def _remove_layout_files(out_dir: str) -> None:
    """Delete the files this module wrote in ``out_dir`` (the ones listed
    by its marker and summary) and the folders they leave empty; the source
    folder is left to the synthetic generator."""
    listed = set()
    for name in (MARKER_FILE, SUMMARY_FILE):
        data = _read_json(osp.join(out_dir, name)) or {}
        for entry in data.get('files', []):
            listed.add(entry['path'] if isinstance(entry, dict) else entry)
    folders = set()
    for rel in sorted(listed):
        path = _inside(out_dir, rel)
        if path is None:
            continue
        for candidate in (path, path + '.part'):  # .part: older versions
            if osp.isfile(candidate):
                os.remove(candidate)
        remove_temp_files(osp.dirname(path), re.escape(osp.basename(path)))
        folder = osp.dirname(path)
        while folder != out_dir and folder.startswith(out_dir + os.sep):
            folders.add(folder)
            folder = osp.dirname(folder)
    for folder in sorted(folders, key=len, reverse=True):
        if osp.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    for name in (SUMMARY_FILE, MARKER_FILE):
        path = osp.join(out_dir, name)
        if osp.isfile(path):
            os.remove(path)
    remove_temp_files(out_dir, '|'.join(
        re.escape(n) for n in (SUMMARY_FILE, MARKER_FILE)))


# ============================================================== entry point
def format_summary(summary: dict) -> str:
    """Human-readable text of a summary of
    :func:`generate_synthetic_downstream`."""
    params = summary['params']
    splits = ', '.join(f'{k}: {v}' for k, v in summary['splits'].items())
    lines = [
        f"Synthetic {params['layout']} layout in {summary['out_dir']}",
        f"  {params['num_videos']} items x {params['seconds']} s, "
        f"{len(summary['classes'])} classes, seed {params['seed']}",
        f'  splits: {splits}',
        f"  files: {len(summary['files'])}",
    ]
    if summary.get('skipped'):
        lines.append('  status: already complete with these parameters, '
                     'nothing written')
    else:
        lines.append(f"  status: written in {summary['elapsed_s']:.1f} s")
    return '\n'.join(lines)


def generate_synthetic_downstream(out_dir: str,
                                  layout: str,
                                  num_videos: int = 60,
                                  seconds: int = 4,
                                  num_classes: int = 6,
                                  seed: int = 0,
                                  *,
                                  height: int = 128,
                                  width: int = 128,
                                  fps: int = 16,
                                  sample_rate: int = 16000,
                                  test_fraction: float = 0.25,
                                  num_groups: int = 4,
                                  workers: int = 1,
                                  overwrite: bool = False,
                                  verbose: bool = True) -> dict:
    """Write (or verify) a synthetic dataset in a downstream layout.

    Args:
        out_dir: output folder; created if missing.
        layout: ``'ucf101'``, ``'kinetics_sounds'``, ``'charades'`` or
            ``'esc50'`` (see the module docstring).
        num_videos: videos (ESC-50: clips); balanced over the classes.
        seconds: length of every video or clip (ESC-50 clips: 5).
        num_classes: classes of the synthetic generator (2-30); Charades
            has two more (the event classes).
        seed: master seed; the same parameters give the same files.
        height, width, fps, sample_rate: media format (see
            :class:`~avtoolkit.data_prep.synthetic_av.SyntheticAVConfig`).
        test_fraction: share of every class in the test split (Kinetics
            ``validate.csv``, Charades test CSV).
        num_groups: UCF101 groups per class (>= 4).
        workers: processes rendering the source videos.
        overwrite: allow writing into a non-empty folder not made here.
        verbose: progress bars and a printed summary.

    Returns:
        The summary (as stored in ``summary.json``) plus ``out_dir``,
        ``skipped`` and ``elapsed_s``.

    Raises:
        FileExistsError: ``out_dir`` is non-empty, was not written by this
            function and ``overwrite`` is False.
        NotADirectoryError: ``out_dir`` is a file.
        ValueError, TypeError: invalid parameters.
    """
    start = time.time()
    params = downstream_params(
        layout, num_videos=num_videos, seconds=seconds,
        num_classes=num_classes, seed=seed, height=height, width=width,
        fps=fps, sample_rate=sample_rate, test_fraction=test_fraction,
        num_groups=num_groups)
    if isinstance(workers, bool) or not isinstance(workers, int) or \
            workers < 1:
        raise ValueError(f'workers must be a positive integer, got '
                         f'{workers!r}')
    out_dir = osp.abspath(out_dir)
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir} exists and is not a folder')

    if osp.isdir(out_dir) and os.listdir(out_dir):
        summary = _is_complete(out_dir, params)
        if summary is not None:
            summary.update(out_dir=out_dir, skipped=True,
                           elapsed_s=time.time() - start)
            if verbose:
                print(format_summary(summary))
            return summary
        owned = _owned(out_dir)
        if owned is not None:
            if owned.get('params') != params and verbose:
                print(f'Replacing the synthetic {owned["params"]["layout"]} '
                      f'layout in {out_dir} (different parameters).')
            _remove_layout_files(out_dir)
        elif not overwrite:
            raise FileExistsError(
                f'{out_dir} is not empty and was not written by the '
                'synthetic downstream generator; choose another folder or '
                'pass overwrite=True (--overwrite)')

    os.makedirs(out_dir, exist_ok=True)
    if layout == 'esc50':
        plan = _plan_esc50(params)
    else:
        # the marker goes first, so that the source folder is ours too
        write_text_atomic(osp.join(out_dir, MARKER_FILE), json.dumps(dict(
            generator=GENERATOR_NAME, format_version=FORMAT_VERSION,
            params=params, files=[]), indent=1), newline='')
        videos = _source_videos(out_dir, params, workers, overwrite, verbose)
        plan = dict(ucf101=_plan_ucf101,
                    kinetics_sounds=_plan_kinetics_sounds,
                    charades=_plan_charades)[layout](params, videos)
    files = _planned_files(plan)
    write_text_atomic(osp.join(out_dir, MARKER_FILE), json.dumps(dict(
        generator=GENERATOR_NAME, format_version=FORMAT_VERSION,
        params=params, files=files), indent=1), newline='')

    bar = _progress(len(plan['links']) + len(plan['wavs']), verbose)
    if verbose:
        print(f'Writing the {layout} layout into {out_dir}')
    for src, rel in plan['links']:
        _place(src, osp.join(out_dir, rel))
        if bar is not None:
            bar.update()
    if plan['wavs']:
        config = SyntheticAVConfig(
            num_videos=params['num_videos'], seconds=params['seconds'],
            num_classes=params['num_classes'], seed=params['seed'],
            height=32, width=32, fps=params['fps'],
            sample_rate=params['sample_rate'], val_fraction=0.0)
        for item in plan['wavs']:
            plan_i = sample_video_plan(config, item['index'],
                                                 item['label'])
            _write_wav(osp.join(out_dir, item['path']),
                       render_audio(plan_i, config),
                       params['sample_rate'])
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    for rel, text in plan['texts'].items():
        write_text_atomic(osp.join(out_dir, rel), text, newline='')

    summary = dict(
        generator=GENERATOR_NAME,
        format_version=FORMAT_VERSION,
        params=params,
        classes=plan['classes'],
        splits=plan['splits'],
        files=[dict(path=rel, bytes=osp.getsize(osp.join(out_dir, rel)))
               for rel in files],
        generation_time_s=round(time.time() - start, 3),
    )
    write_text_atomic(osp.join(out_dir, SUMMARY_FILE),
                      json.dumps(summary, indent=1), newline='')
    summary.update(out_dir=out_dir, skipped=False,
                   elapsed_s=time.time() - start)
    if verbose:
        print(format_summary(summary))
    return summary
