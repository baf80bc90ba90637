"""Generate the synthetic audio-visual dataset (videos, lists, summary,
optionally broken files), reproducibly and in parallel.

Output layout::

    OUT_DIR/videos/synth_00000.mp4 ...
    OUT_DIR/train_list.txt        # "videos/<name>.mp4 <label>" per line
    OUT_DIR/val_list.txt
    OUT_DIR/classes.txt           # class descriptions, line i = label i
    OUT_DIR/summary.json          # parameters, counts, per-video events
    OUT_DIR/.synthetic_av.json    # ownership marker with the parameters
    OUT_DIR/broken/*.mp4          # only with ``broken=True``

docs/data_preparation.md describes what the videos show and why.
"""
import json
import multiprocessing
import os
import os.path as osp
import re
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from avtoolkit.utils.atomic import (atomic_path, remove_temp_files,
                                    write_bytes_atomic, write_text_atomic)
from .synthetic_render import _encode_mp4, iter_frames, render_audio
from .synthetic_spec import SyntheticAVConfig, class_specs, sample_video_plan

# The generator's identity in the files it writes (kept from its first home,
# so that data generated earlier is still recognised as its own).
GENERATOR_NAME = 'avtoolkit.data_prep.synthetic_av'
FORMAT_VERSION = 3
MARKER_FILE = '.synthetic_av.json'
SUMMARY_FILE = 'summary.json'
VIDEO_DIR = 'videos'
BROKEN_DIR = 'broken'
VIDEO_PREFIX = 'synth_'

def _generate_one(job: dict) -> dict:
    """Render and encode one video; returns its summary entry."""
    config = SyntheticAVConfig(**job['config'])
    plan = sample_video_plan(config, job['index'], job['label'])
    path = job['path']
    if not job.get('reuse'):
        with atomic_path(path) as tmp:
            _encode_mp4(tmp, iter_frames(plan, config),
                        render_audio(plan, config), config)
    return _video_entry(plan, job, config)


def _video_entry(plan: dict, job: dict, config: SyntheticAVConfig) -> dict:
    keep = ('onset', 'duration', 'pitch_hz', 'glide', 'loudness')
    return dict(
        name=job['name'],
        path=job['rel_path'],
        label=plan['label'],
        split=job['split'],
        seed=plan['seed'],
        bytes=osp.getsize(job['path']),
        num_frames=config.seconds * config.fps,
        num_audio_samples=config.seconds * config.sample_rate,
        events=[{k: round(e[k], 6) for k in keep} for e in plan['events']],
    )


# --------------------------------------------------------------------------
# Dataset generation.
# --------------------------------------------------------------------------


def _assign_labels_and_splits(config: SyntheticAVConfig) -> tuple:
    """Balanced shuffled labels and a class-stratified train/val split."""
    rng = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(2**32 - 1, )))
    labels = np.arange(config.num_videos) % config.num_classes
    labels = labels[rng.permutation(config.num_videos)]
    splits = ['train'] * config.num_videos
    for c in range(config.num_classes):
        members = np.flatnonzero(labels == c)
        n_val = int(round(config.val_fraction * len(members)))
        n_val = min(n_val, max(len(members) - 1, 0))
        for idx in rng.permutation(members)[:n_val]:
            splits[int(idx)] = 'val'
    return [int(x) for x in labels], splits


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_generator_output(out_dir: str) -> bool:
    for name in (MARKER_FILE, SUMMARY_FILE):
        data = _read_json(osp.join(out_dir, name))
        if data is not None and data.get('generator') == GENERATOR_NAME:
            return True
    return False


def _is_complete(out_dir: str, params: dict) -> Optional[dict]:
    """The stored summary if ``out_dir`` holds a finished dataset with
    exactly these parameters, else None."""
    summary = _read_json(osp.join(out_dir, SUMMARY_FILE))
    if (summary is None or summary.get('generator') != GENERATOR_NAME
            or summary.get('format_version') != FORMAT_VERSION
            or summary.get('params') != params):
        return None
    for name in ('train_list.txt', 'val_list.txt', 'classes.txt'):
        if not osp.isfile(osp.join(out_dir, name)):
            return None
    videos = summary.get('videos', [])
    if len(videos) != params['num_videos']:
        return None
    for video in videos:
        path = osp.join(out_dir, video['path'])
        if not osp.isfile(path) or osp.getsize(path) != video['bytes']:
            return None
    return summary


_TOP_FILES = (SUMMARY_FILE, MARKER_FILE, 'train_list.txt', 'val_list.txt',
              'classes.txt')
_VIDEO_NAMES = re.escape(VIDEO_PREFIX) + r'\d+\.mp4'


def _remove_temp_files(out_dir: str) -> None:
    """Delete the temporary files of interrupted writes of this generator
    (``.NAME.<random>.tmp``; ``NAME.part`` from older versions)."""
    remove_temp_files(out_dir, '|'.join(map(re.escape, _TOP_FILES)))
    remove_temp_files(osp.join(out_dir, VIDEO_DIR), _VIDEO_NAMES)
    remove_temp_files(osp.join(out_dir, BROKEN_DIR),
                      '|'.join(re.escape(k + '.mp4') for k in BROKEN_KINDS))
    for name in _TOP_FILES:
        path = osp.join(out_dir, name + '.part')
        if osp.isfile(path):
            os.remove(path)
    video_dir = osp.join(out_dir, VIDEO_DIR)
    if osp.isdir(video_dir):
        for name in os.listdir(video_dir):
            if re.fullmatch(_VIDEO_NAMES + r'\.part', name):
                os.remove(osp.join(video_dir, name))


def _remove_generator_files(out_dir: str) -> None:
    """Delete what this generator writes (and nothing else) in out_dir."""
    _remove_temp_files(out_dir)
    for name in _TOP_FILES:
        path = osp.join(out_dir, name)
        if osp.isfile(path):
            os.remove(path)
    video_dir = osp.join(out_dir, VIDEO_DIR)
    if osp.isdir(video_dir):
        for name in os.listdir(video_dir):
            if name.startswith(VIDEO_PREFIX) and name.endswith('.mp4'):
                os.remove(osp.join(video_dir, name))
        if not os.listdir(video_dir):
            os.rmdir(video_dir)
    broken_dir = osp.join(out_dir, BROKEN_DIR)
    if osp.isdir(broken_dir):
        for name in BROKEN_KINDS:
            path = osp.join(broken_dir, name + '.mp4')
            if osp.isfile(path):
                os.remove(path)
        if not os.listdir(broken_dir):
            os.rmdir(broken_dir)


def _human_bytes(n: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{int(n)} B'
        n /= 1024
    return f'{n:.1f} GiB'


def format_summary(summary: dict) -> str:
    """Human-readable text of a summary from :func:`generate_synthetic_av`."""
    params = summary['params']
    lines = [
        f"Synthetic audio-visual dataset in {summary['out_dir']}",
        f"  videos: {summary['num_videos']} x {params['seconds']} s "
        f"({params['width']}x{params['height']} @ {params['fps']} fps, "
        f"audio {params['sample_rate']} Hz mono AAC), "
        f"{params['num_classes']} classes, seed {params['seed']}",
    ]
    for split in ('train', 'val'):
        info = summary['splits'][split]
        per_class = ' '.join(f'{c}:{n}' for c, n in enumerate(
            info['per_class']))
        lines.append(f"  {split:5s}: {info['num_videos']:4d} videos, "
                     f"{info['seconds']} s  [per class {per_class}]")
    lines.append(f"  total: {summary['total_seconds']} s of media, "
                 f"{_human_bytes(summary['total_bytes'])}")
    if summary.get('skipped'):
        lines.append('  status: already complete with these parameters, '
                     'nothing generated '
                     f"(checked in {summary['elapsed_s']:.2f} s; original "
                     f"generation took {summary['generation_time_s']:.1f} s)")
    else:
        lines.append(f"  status: generated {summary['generated']} videos "
                     f"(reused {summary['reused']}) in "
                     f"{summary['generation_time_s']:.1f} s with "
                     f"{summary['workers']} worker(s)")
    for kind, path in sorted(summary.get('broken', {}).items()):
        lines.append(f'  broken input [{kind}]: {path}')
    return '\n'.join(lines)


def generate_synthetic_av(out_dir: str,
                          num_videos: int = 100,
                          seconds: int = 8,
                          num_classes: int = 10,
                          seed: int = 0,
                          *,
                          height: int = 128,
                          width: int = 128,
                          fps: int = 16,
                          sample_rate: int = 16000,
                          val_fraction: float = 0.2,
                          scene_seconds: int = 1,
                          workers: int = 1,
                          overwrite: bool = False,
                          broken: bool = False,
                          verbose: bool = True) -> dict:
    """Generate (or verify) a synthetic audio-visual dataset in ``out_dir``.

    Args:
        out_dir: output folder; created if missing.
        num_videos, seconds, num_classes, seed, height, width, fps,
        sample_rate, val_fraction, scene_seconds: see
        :class:`SyntheticAVConfig`.
        workers: worker processes (content does not depend on it).
        overwrite: allow writing into a non-empty folder that was not made
            by this generator (only the generator's own file names are
            replaced; other files are left alone).
        broken: also write the broken inputs of :func:`write_broken_inputs`
            into ``out_dir/broken``.
        verbose: show a progress bar and print the summary.

    Returns:
        The summary dict (also stored as ``summary.json``) plus
        ``out_dir``, ``skipped`` (True if a complete dataset with the same
        parameters was already there), ``elapsed_s`` (this call) and
        ``broken`` (kind -> path) when requested.

    Raises:
        FileExistsError: ``out_dir`` is non-empty, was not written by this
            generator and ``overwrite`` is False.
        NotADirectoryError: ``out_dir`` is an existing file.
        ValueError, TypeError: invalid parameters.
    """
    start_time = time.time()
    config = SyntheticAVConfig(
        num_videos=num_videos,
        seconds=seconds,
        num_classes=num_classes,
        seed=seed,
        height=height,
        width=width,
        fps=fps,
        sample_rate=sample_rate,
        val_fraction=val_fraction,
        scene_seconds=scene_seconds)
    if isinstance(workers, bool) or not isinstance(workers, int) or \
            workers < 1:
        raise ValueError(f'workers must be a positive integer, got '
                         f'{workers!r}')
    params = config.to_dict()
    out_dir = osp.abspath(out_dir)
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir} exists and is not a folder')

    existing = osp.isdir(out_dir) and bool(os.listdir(out_dir))
    if existing:
        summary = _is_complete(out_dir, params)
        if summary is not None:
            summary.update(out_dir=out_dir, skipped=True,
                           elapsed_s=time.time() - start_time)
            if broken:
                summary['broken'] = write_broken_inputs(
                    osp.join(out_dir, BROKEN_DIR), seed=config.seed,
                    height=config.height, width=config.width,
                    fps=config.fps, sample_rate=config.sample_rate)
            if verbose:
                print(f'{out_dir} already holds a complete synthetic dataset '
                      'with the same parameters; skipping generation.')
                print(format_summary(summary))
            return summary
        marker = _read_json(osp.join(out_dir, MARKER_FILE))
        if marker is not None and marker.get('generator') == GENERATOR_NAME \
                and marker.get('format_version') == FORMAT_VERSION \
                and marker.get('params') == params:
            if verbose:
                print(f'Resuming the unfinished synthetic dataset in '
                      f'{out_dir}.')
            _remove_temp_files(out_dir)
        elif _is_generator_output(out_dir) or overwrite:
            if verbose:
                print(f'Replacing the synthetic dataset files in {out_dir} '
                      '(different parameters or overwrite requested).')
            _remove_generator_files(out_dir)
        else:
            raise FileExistsError(
                f'{out_dir} is not empty and was not written by the '
                'synthetic data generator; choose another folder or pass '
                'overwrite=True (--overwrite)')

    video_dir = osp.join(out_dir, VIDEO_DIR)
    os.makedirs(video_dir, exist_ok=True)
    write_text_atomic(
        osp.join(out_dir, MARKER_FILE),
        json.dumps(dict(generator=GENERATOR_NAME,
                        format_version=FORMAT_VERSION, params=params),
                   indent=1), newline='')

    # Finished videos of an interrupted run with the same parameters are
    # kept (each was renamed into place only once fully written); a size
    # that disagrees with an older summary means the file is regenerated.
    old_summary = _read_json(osp.join(out_dir, SUMMARY_FILE))
    recorded = {}
    if old_summary is not None and old_summary.get('params') == params:
        recorded = {v.get('path'): v.get('bytes')
                    for v in old_summary.get('videos', [])}

    labels, splits = _assign_labels_and_splits(config)
    jobs = []
    for index in range(config.num_videos):
        name = f'{VIDEO_PREFIX}{index:05d}'
        rel_path = f'{VIDEO_DIR}/{name}.mp4'
        path = osp.join(out_dir, rel_path)
        reuse = osp.isfile(path) and recorded.get(
            rel_path, osp.getsize(path)) == osp.getsize(path)
        jobs.append(
            dict(config=params, index=index, label=labels[index],
                 split=splits[index], name=name, rel_path=rel_path,
                 path=path, reuse=reuse))
    reused = sum(job['reuse'] for job in jobs)

    entries = _run_jobs(jobs, workers, verbose)
    entries.sort(key=lambda e: e['name'])

    specs = class_specs(config.num_classes)
    for split in ('train', 'val'):
        lines = [f"{e['path']} {e['label']}\n" for e in entries
                 if e['split'] == split]
        write_text_atomic(osp.join(out_dir, f'{split}_list.txt'),
                          ''.join(lines), newline='')
    write_text_atomic(
        osp.join(out_dir, 'classes.txt'),
        ''.join(spec.describe() + '\n' for spec in specs), newline='')

    split_info = {}
    for split in ('train', 'val'):
        members = [e for e in entries if e['split'] == split]
        per_class = [0] * config.num_classes
        for e in members:
            per_class[e['label']] += 1
        split_info[split] = dict(num_videos=len(members),
                                 seconds=len(members) * config.seconds,
                                 per_class=per_class)
    generation_time = time.time() - start_time
    summary = dict(
        generator=GENERATOR_NAME,
        format_version=FORMAT_VERSION,
        params=params,
        classes=[spec.describe() for spec in specs],
        num_videos=config.num_videos,
        splits=split_info,
        total_seconds=config.num_videos * config.seconds,
        total_bytes=int(sum(e['bytes'] for e in entries)),
        generation_time_s=round(generation_time, 3),
        generated=config.num_videos - reused,
        reused=reused,
        workers=workers,
        videos=entries,
    )
    write_text_atomic(osp.join(out_dir, SUMMARY_FILE),
                      json.dumps(summary, indent=1), newline='')
    summary.update(out_dir=out_dir, skipped=False,
                   elapsed_s=time.time() - start_time)
    if broken:
        summary['broken'] = write_broken_inputs(
            osp.join(out_dir, BROKEN_DIR), seed=config.seed,
            height=config.height, width=config.width, fps=config.fps,
            sample_rate=config.sample_rate)
    if verbose:
        print(format_summary(summary))
    return summary


def _run_jobs(jobs: List[dict], workers: int, verbose: bool) -> List[dict]:
    """Run ``_generate_one`` over jobs, serially or in a process pool."""
    bar = None
    if verbose:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(jobs), file=sys.stdout)
    entries = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            entries.append(_generate_one(job))
            if bar is not None:
                bar.update()
    else:
        # "fork" (where available) needs no importable __main__ guard in the
        # caller; the workers use only numpy and PyAV, never the parent's
        # threads.  Other platforms fall back to "spawn".
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context(
            'fork' if 'fork' in methods else 'spawn')
        with context.Pool(min(workers, len(jobs))) as pool:
            for entry in pool.imap_unordered(_generate_one, jobs):
                entries.append(entry)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return entries


# --------------------------------------------------------------------------
# Broken inputs.
# --------------------------------------------------------------------------

BROKEN_KINDS = ('truncated', 'no_index', 'no_audio', 'short', 'empty')


def write_broken_inputs(out_dir: str,
                        seed: int = 0,
                        *,
                        height: int = 128,
                        width: int = 128,
                        fps: int = 16,
                        sample_rate: int = 16000) -> Dict[str, str]:
    """Write deliberately broken media files for loader robustness tests.

    Kinds (file ``<kind>.mp4`` in ``out_dir``):

    * ``truncated``: a 2 s clip written with its index at the front, then cut
      to half its bytes; the header still declares 2 s but the streams end
      early (decoders either fail or return fewer frames than declared);
    * ``no_index``: a 2 s clip written with its index at the end, then cut
      to half its bytes; the container cannot be opened at all;
    * ``no_audio``: a valid 2 s clip with a video stream only;
    * ``short``: a valid clip of 0.5 s (shorter than one event second);
    * ``empty``: a zero-byte file.

    Returns:
        ``{kind: absolute path}`` for every kind in :data:`BROKEN_KINDS`.
    """
    config = SyntheticAVConfig(num_videos=1, seconds=2, num_classes=2,
                               seed=seed, height=height, width=width,
                               fps=fps, sample_rate=sample_rate)
    out_dir = osp.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    plan = sample_video_plan(config, 0, 0)
    paths = {kind: osp.join(out_dir, kind + '.mp4') for kind in BROKEN_KINDS}

    def full_clip(path, with_audio=True, faststart=False, seconds=2.0,
                  cut=False):
        frames = int(round(seconds * fps))
        samples = int(round(seconds * sample_rate))
        audio = render_audio(plan, config, samples) if with_audio else None
        with atomic_path(path) as tmp:
            _encode_mp4(tmp, iter_frames(plan, config, frames), audio,
                        config, faststart=faststart)
            if cut:  # to half its bytes
                os.truncate(tmp, osp.getsize(tmp) // 2)

    for kind, faststart in (('truncated', True), ('no_index', False)):
        full_clip(paths[kind], faststart=faststart, cut=True)
    full_clip(paths['no_audio'], with_audio=False)
    full_clip(paths['short'], seconds=0.5)
    write_bytes_atomic(paths['empty'], b'')
    return paths
