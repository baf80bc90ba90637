"""Build WebDataset tar shards of audio-visual samples (for ``AVWebDataset``).

Input: a list file in the format of :class:`AVVideoDataset` (``path
[label ...]`` per line, paths relative to ``root``, default: the list's
folder).  Output folder::

    OUT/shard-000000.tar        samples <key>.<ext> + <key>.json
    OUT/shard-000000.tar.json   what the shard holds and what was skipped
    OUT/index.json              shard names and sample counts (read by
                                AVWebDataset)
    OUT/report.json             every skipped input with its reason
    OUT/build.json              the list fingerprint and options

Sample keys are the 9-digit line numbers of the list (after dropping blank
and comment lines), and list entry ``i`` always goes to shard
``i // shard_size``: membership depends only on the list, so a rerun
reproduces it.  Inputs that fail the probe are left out of their shard
(which then holds fewer samples) and listed in the report.

Every input is probed before it is stored: the container must open, have a
video stream (and an audio stream unless ``require_audio=False``), declare
a length of at least ``min_duration`` seconds, decode at its first and
last frame, and decode its whole audio track (which catches cut files whose
header still declares the full length, and corrupt audio anywhere; with
``reencode=True`` the re-encoding is that decoding).  The
holes in the audio timestamps (filled with silence when read, see
:class:`~avtoolkit.datasets.io.MediaReader`) are listed in the sample's
JSON (``probe.audio_gaps``: ``[time, seconds]`` pairs) and counted in the
build report.

Two storage modes: the original bytes (default), or a re-encoded copy
(``reencode=True``): H.264 (``libx264``, ``crf``, ``preset``, a key frame
every ``keyframe_interval`` seconds so that clip seeking decodes little),
short side ``short_side`` (even sizes), constant ``fps``, and mono AAC at
``sample_rate``, both streams starting at the first instant where the
source has both.

Resuming and safety: a shard is written to ``.NAME.<random>.tmp``
(:mod:`avtoolkit.utils.atomic`) and renamed into place after its
``.tar.json`` record, so a visible ``NAME`` is always complete.  A rerun
with the same list and options skips every shard whose tar and record
exist and removes temporary files left by an interrupted run.  A folder
built from a different list or with different options is refused unless
``overwrite=True``, which deletes only the files of the previous build
(the names above).
"""
import hashlib
import io
import json
import math
import multiprocessing
import os
import os.path as osp
import re
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

import av
import numpy as np
from webdataset import TarWriter

from avtoolkit.datasets.av_video_dataset import read_video_list
from avtoolkit.datasets.av_webdataset import INDEX_FILE, MEDIA_EXTENSIONS
from avtoolkit.datasets.bad_input import BadInputError
from avtoolkit.utils.atomic import (atomic_path, temp_file_pattern,
                                    write_json_atomic)
from avtoolkit.datasets.io import MediaReader

FORMAT_VERSION = 1
BUILD_FILE = 'build.json'
REPORT_FILE = 'report.json'
RECORD_SUFFIX = '.json'  # NAME.tar.json beside NAME.tar


@dataclass(frozen=True)
class ShardOptions:
    """What goes into the shards (all of it is part of the fingerprint).

    Args:
        shard_size: list entries per shard.
        reencode: store a re-encoded copy instead of the original bytes.
        short_side: short side of re-encoded video (pixels, even).
        fps: frame rate of re-encoded video.
        sample_rate: audio rate of re-encoded audio (an AAC rate).
        crf, preset: libx264 quality and speed.
        keyframe_interval: seconds between key frames of re-encoded video.
        audio_bitrate: AAC bit rate (bits per second).
        require_audio: skip inputs without an audio stream.
        min_duration: skip inputs shorter than this (seconds; 0: no limit).
        prefix: shard file name prefix.
    """
    shard_size: int = 100
    reencode: bool = False
    short_side: int = 128
    fps: float = 16.0
    sample_rate: int = 16000
    crf: int = 23
    preset: str = 'veryfast'
    keyframe_interval: float = 1.0
    audio_bitrate: int = 64000
    require_audio: bool = True
    min_duration: float = 0.0
    prefix: str = 'shard'

    def __post_init__(self):
        if self.shard_size < 1:
            raise ValueError(f'shard_size must be >= 1, got {self.shard_size}')
        if self.short_side < 2 or self.short_side % 2:
            raise ValueError('short_side must be an even number >= 2, got '
                             f'{self.short_side}')
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError('fps and sample_rate must be positive')
        if self.keyframe_interval <= 0:
            raise ValueError('keyframe_interval must be positive')
        if not re.fullmatch(r'[A-Za-z0-9_]+', self.prefix):
            raise ValueError('prefix may only hold letters, digits and _, '
                             f'got {self.prefix!r}')

    def content(self) -> dict:
        """The options that change the shards' content."""
        out = asdict(self)
        if not self.reencode:
            for key in ('short_side', 'fps', 'sample_rate', 'crf', 'preset',
                        'keyframe_interval', 'audio_bitrate'):
                out.pop(key)
        return out

    def shard_name(self, index: int) -> str:
        return f'{self.prefix}-{index:06d}.tar'


# ------------------------------------------------------------------ probing
def probe_input(path: str, require_audio: bool = True,
                min_duration: float = 0.0, whole_audio: bool = True) -> dict:
    """Check that ``path`` can give samples; returns its layout.

    With ``whole_audio`` the whole audio track is decoded and its holes
    listed (``audio_gaps``); without, only its first 20 ms (for callers
    that decode all of it anyway, as :func:`reencode_media`).

    Raises:
        BadInputError: with the reason it cannot.
    """
    with MediaReader(path, need_video=True, need_audio=require_audio) as r:
        if r.duration < max(min_duration, 1e-3):
            raise BadInputError('too_short', path,
                                f'{r.duration:.2f}s < {min_duration:.2f}s')
        period = 1.0 / r.fps if r.fps else 0.04
        last = max(r.start, r.end - 0.5 * period)
        r.read_frames([r.start, last], short_side=16)
        info = r.info()
        if r.audio_stream is not None and not whole_audio:
            r.read_audio([r.start], max(1, int(0.02 * 16000)), 16000)
        elif r.audio_stream is not None:
            # The whole audio time line, in pieces of at most a minute: a
            # decoding error or a cut anywhere is found here, and the holes
            # in its timestamps are recorded.
            sr, piece = 8000, 60.0
            for s in np.arange(r.start, r.end, piece):
                n = int(round((min(r.end, s + piece) - s) * sr))
                if n > 0:
                    r.read_audio([s], n, sr)
            info['audio_gaps'] = [[round(t, 4), round(g, 4)]
                                  for t, g in r.audio_gaps]
        else:
            info['has_audio'] = bool(r.container.streams.audio)
    return info


# --------------------------------------------------------------- re-encoding
def _even(x: int) -> int:
    return max(2, int(x) // 2 * 2)


def reencode_media(path: str, opts: ShardOptions) -> Tuple[bytes, dict]:
    """A small H.264 + mono AAC mp4 copy of ``path`` (see module docs).

    Returns:
        (mp4 bytes, dict with duration, fps, width, height, sample_rate,
        has_audio and the source's ``audio_gaps``).
    """
    has_audio = True
    try:
        reader = MediaReader(path, need_video=True, need_audio=True)
    except BadInputError as e:
        if e.reason != 'no_audio' or opts.require_audio:
            raise
        has_audio = False
        reader = MediaReader(path, need_video=True, need_audio=False)
    with reader as r:
        start, end = r.start, r.end
        w, h = r.output_size(opts.short_side)
        w, h = _even(w), _even(h)
        rate = Fraction(opts.fps).limit_denominator(1001)
        n_frames = max(1, int(math.floor((end - start) * float(rate) + 1e-6)))
        sr = opts.sample_rate
        audio = None
        if has_audio:
            n_audio = int(round(n_frames / float(rate) * sr))
            audio = r.read_audio([start], n_audio, sr)[0]

        buf = io.BytesIO()
        out = av.open(buf, 'w', format='mp4')
        try:
            vs = out.add_stream('libx264', rate=rate)
            vs.width, vs.height, vs.pix_fmt = w, h, 'yuv420p'
            gop = max(1, int(round(opts.keyframe_interval * float(rate))))
            vs.options = {'crf': str(opts.crf), 'preset': opts.preset,
                          'g': str(gop), 'keyint_min': str(gop),
                          'sc_threshold': '0', 'threads': '1'}
            aus = None
            if audio is not None:
                aus = out.add_stream('aac', rate=sr)
                aus.layout = 'mono'
                aus.bit_rate = opts.audio_bitrate
                aus.options = {'aac_coder': 'fast'}
            a_pos = 0
            chunk = 1024

            def mux_audio_until(t_sec):
                nonlocal a_pos
                if aus is None:
                    return
                limit = min(len(audio), int(round(t_sec * sr)))
                while a_pos < limit:
                    piece = audio[a_pos:a_pos + chunk]
                    frame = av.AudioFrame.from_ndarray(
                        np.ascontiguousarray(piece[None, :]), format='flt',
                        layout='mono')
                    frame.sample_rate, frame.pts = sr, a_pos
                    frame.time_base = Fraction(1, sr)
                    for p in aus.encode(frame):
                        out.mux(p)
                    a_pos += len(piece)

            cache = [None, None]

            def emit(frame, k):
                if frame is not cache[0]:
                    cache[0] = frame
                    cache[1] = frame.reformat(width=w, height=h,
                                              format='yuv420p',
                                              interpolation='AREA')
                mux_audio_until((k + 1) / float(rate))
                vf = cache[1]  # the encoder keeps its own reference
                vf.pts = k
                vf.time_base = 1 / rate
                # The source decoder's picture type would force key frames.
                vf.pict_type = av.video.frame.PictureType.NONE
                for p in vs.encode(vf):
                    out.mux(p)

            k, prev, prev_t = 0, None, None
            period = 1.0 / r.fps if r.fps else 1.0 / float(rate)
            for t, frame in r.iter_video_frames(start):
                # output frame k shows the source frame on screen at its time
                while k < n_frames and start + k / float(rate) < t:
                    emit(prev if prev is not None else frame, k)
                    k += 1
                if k >= n_frames:
                    break
                prev, prev_t = frame, t
            if k < n_frames:
                last_needed = start + (n_frames - 1) / float(rate)
                if prev is None or last_needed > prev_t + period + \
                        r.tail_tolerance:
                    got = 'nothing' if prev is None else f'{prev_t:.2f}s'
                    raise BadInputError(
                        'truncated', path,
                        f'video decodes to {got}, header says {end:.2f}s')
                while k < n_frames:
                    emit(prev, k)
                    k += 1
            for p in vs.encode():
                out.mux(p)
            mux_audio_until(len(audio) / sr if audio is not None else 0)
            if aus is not None:
                for p in aus.encode():
                    out.mux(p)
        finally:
            out.close()
    info = dict(duration=n_frames / float(rate), fps=float(rate), width=w,
                height=h, sample_rate=sr if has_audio else None,
                has_audio=has_audio,
                audio_gaps=[[round(t, 4), round(g, 4)]
                            for t, g in reader.audio_gaps])
    return buf.getvalue(), info


# ------------------------------------------------------------------ shards
def _media_ext(path: str) -> str:
    ext = osp.splitext(path)[1][1:].lower()
    return ext if ext in MEDIA_EXTENSIONS else 'mp4'


def _build_shard(task: dict) -> dict:
    """Write one shard (runs in a worker process)."""
    opts = ShardOptions(**task['options'])
    out_dir, name = task['out_dir'], task['name']
    skipped, keys, gapped = [], [], []
    t0 = time.time()
    # the tar is renamed into place when the block ends, after its record
    with atomic_path(osp.join(out_dir, name)) as tmp:
        with TarWriter(tmp, mtime=0.0) as writer:
            for idx, rel, path, labels in task['entries']:
                try:
                    # Re-encoding decodes the whole audio track itself:
                    # the probe leaves it, and its holes, to that step.
                    info = probe_input(path, opts.require_audio,
                                       opts.min_duration,
                                       whole_audio=not opts.reencode)
                    if opts.reencode:
                        data, enc = reencode_media(path, opts)
                        ext = 'mp4'
                        gaps = enc.pop('audio_gaps')
                        info = dict(info, stored=enc, audio_gaps=gaps)
                    else:
                        with open(path, 'rb') as f:
                            data = f.read()
                        ext = _media_ext(path)
                except BadInputError as e:
                    skipped.append(dict(index=idx, path=rel, reason=e.reason,
                                        detail=e.detail))
                    continue
                except Exception as e:  # an encoder failure, for instance
                    skipped.append(dict(index=idx, path=rel,
                                        reason='pipeline_error',
                                        detail=f'{type(e).__name__}: {e}'))
                    continue
                if info.get('audio_gaps'):
                    gapped.append(dict(index=idx, path=rel,
                                       gaps=info['audio_gaps']))
                label = labels[0] if len(labels) == 1 else (labels or None)
                meta = dict(source=rel, label=label, probe=info,
                            reencoded=opts.reencode)
                key = f'{idx:09d}'
                writer.write({'__key__': key, ext: data,
                              'json': json.dumps(meta).encode('utf-8')})
                keys.append(key)
        record = dict(name=name, shard=task['shard'], num_samples=len(keys),
                      keys=keys, skipped=skipped, audio_gaps=gapped,
                      first_index=task['entries'][0][0] if task['entries']
                      else None, seconds=round(time.time() - t0, 3))
        write_json_atomic(osp.join(out_dir, name + RECORD_SUFFIX), record,
                          indent=1, sort_keys=True)
    return record


def _fingerprint(entries, root: str, opts: ShardOptions) -> str:
    blob = json.dumps(dict(version=FORMAT_VERSION, root=osp.abspath(root),
                           options=opts.content(),
                           entries=[[p, list(lab)] for p, lab in entries]),
                      sort_keys=True).encode('utf-8')
    return hashlib.sha256(blob).hexdigest()


def _temp_files(out_dir: str, prefix: str) -> List[str]:
    """Temporary files of interrupted writes of a build: ``.NAME.<random>
    .tmp`` (``.NAME.tmp-PID`` from older versions), NAME a shard, a shard
    record or a build file."""
    names = (rf'{re.escape(prefix)}-\d{{6}}\.tar(\.json)?|'
             + '|'.join(re.escape(n) for n in (INDEX_FILE, REPORT_FILE,
                                               BUILD_FILE)))
    pattern = re.compile(rf'^(?:{temp_file_pattern(names)}|'
                         rf'\.(?:{names})\.tmp-\d+)$')
    return [n for n in os.listdir(out_dir) if pattern.match(n)]


def _own_files(out_dir: str, prefix: str) -> List[str]:
    pat = re.compile(rf'^{re.escape(prefix)}-\d{{6}}\.tar(\.json)?$')
    names = [n for n in os.listdir(out_dir) if pat.match(n)]
    names += [n for n in (INDEX_FILE, REPORT_FILE, BUILD_FILE)
              if osp.exists(osp.join(out_dir, n))]
    return names + _temp_files(out_dir, prefix)


def _prepare_folder(out_dir: str, fingerprint: str, opts: ShardOptions,
                    overwrite: bool, build_info: dict) -> bool:
    """Check (and clean) ``out_dir``; returns True when resuming."""
    os.makedirs(out_dir, exist_ok=True)
    build_path = osp.join(out_dir, BUILD_FILE)
    previous = None
    if osp.exists(build_path):
        with open(build_path) as f:
            previous = json.load(f)
    resume = previous is not None and previous.get(
        'fingerprint') == fingerprint
    if not resume:
        old_prefix = (previous or {}).get('options', {}).get(
            'prefix', opts.prefix)
        old = sorted(set(_own_files(out_dir, old_prefix)) |
                     set(_own_files(out_dir, opts.prefix)))
        if old and not overwrite:
            why = ('were built from a different list or with different '
                   'options' if previous is not None else
                   'were not written by this tool (no build.json)')
            raise FileExistsError(
                f'{out_dir} holds shards that {why} ({len(old)} files, e.g. '
                f'{old[0]}); pass overwrite=True (--overwrite) to replace '
                'them, or choose another folder')
        for name in old:
            os.remove(osp.join(out_dir, name))
        write_json_atomic(build_path, build_info, indent=1,
                          sort_keys=True)
    else:
        # Leftovers of an interrupted run: temporary files are ours.
        for name in _temp_files(out_dir, opts.prefix):
            os.remove(osp.join(out_dir, name))
    return resume


def build_shards(list_file: str, out_dir: str, root: Optional[str] = None,
                 workers: int = 1, overwrite: bool = False,
                 progress: bool = True, **options) -> dict:
    """Build (or finish building) the shards of ``list_file`` in
    ``out_dir``.

    Args:
        list_file: the input list.
        out_dir: output folder.
        root: folder that relative list paths start from (default: the
            list's folder).
        workers: processes (one shard per task).
        overwrite: replace shards of a different list/options.
        progress: show a progress bar.
        **options: :class:`ShardOptions` fields.

    Returns:
        The report (also written to ``report.json``).
    """
    t_start = time.time()
    opts = ShardOptions(**options)
    root = osp.abspath(root if root is not None else osp.dirname(
        osp.abspath(list_file)))
    entries = read_video_list(list_file)
    if not entries:
        raise ValueError(f'{list_file} lists no inputs')
    fingerprint = _fingerprint(entries, root, opts)
    build_info = dict(version=FORMAT_VERSION, fingerprint=fingerprint,
                      list_file=osp.abspath(list_file), root=root,
                      num_inputs=len(entries), options=asdict(opts),
                      created=time.strftime('%Y-%m-%d %H:%M:%S'))
    resumed = _prepare_folder(out_dir, fingerprint, opts, overwrite,
                              build_info)

    tasks = []
    for shard in range(math.ceil(len(entries) / opts.shard_size)):
        part = entries[shard * opts.shard_size:(shard + 1) * opts.shard_size]
        base = shard * opts.shard_size
        tasks.append(dict(
            shard=shard, name=opts.shard_name(shard), out_dir=out_dir,
            options=asdict(opts),
            entries=[(base + i, rel, rel if osp.isabs(rel) else
                      osp.join(root, rel), labels)
                     for i, (rel, labels) in enumerate(part)]))

    def done(task):
        path = osp.join(out_dir, task['name'])
        return osp.exists(path) and osp.exists(path + RECORD_SUFFIX)

    todo = [t for t in tasks if not done(t)]
    reused = [t['name'] for t in tasks if done(t)]
    _run_tasks(todo, workers, progress, len(entries),
               sum(len(t['entries']) for t in tasks if done(t)))

    records = []
    for task in tasks:
        with open(osp.join(out_dir, task['name'] + RECORD_SUFFIX)) as f:
            records.append(json.load(f))
    index = dict(version=FORMAT_VERSION, fingerprint=fingerprint,
                 num_samples=sum(r['num_samples'] for r in records),
                 shards=[dict(name=r['name'], num_samples=r['num_samples'])
                         for r in records])
    write_json_atomic(osp.join(out_dir, INDEX_FILE), index, indent=1,
                      sort_keys=True)
    skipped = [s for r in records for s in r['skipped']]
    by_reason: Dict[str, int] = {}
    for s in skipped:
        by_reason[s['reason']] = by_reason.get(s['reason'], 0) + 1
    report = dict(list_file=osp.abspath(list_file), out_dir=out_dir,
                  num_inputs=len(entries), num_samples=index['num_samples'],
                  num_shards=len(tasks), shards_built=[t['name']
                                                       for t in todo],
                  shards_reused=reused, resumed=resumed,
                  skipped_by_reason=by_reason, skipped=skipped,
                  audio_gaps=[g for r in records
                              for g in r.get('audio_gaps', [])],
                  options=asdict(opts),
                  seconds=round(time.time() - t_start, 2))
    write_json_atomic(osp.join(out_dir, REPORT_FILE), report, indent=1,
                      sort_keys=True)
    return report


def _run_tasks(todo: List[dict], workers: int, progress: bool, total: int,
               already: int) -> None:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                               TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    columns = (TextColumn('[bold]shards'), BarColumn(), MofNCompleteColumn(),
               TextColumn('inputs'), TimeElapsedColumn(),
               TimeRemainingColumn())
    pool = None
    if workers > 1 and len(todo) > 1:
        # Fork before the progress bar starts its refresh thread.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context(
            'fork' if 'fork' in methods else 'spawn')
        pool = ctx.Pool(min(workers, len(todo)))
    try:
        with Progress(*columns, disable=not progress) as bar:
            job = bar.add_task('shards', total=total, completed=already)
            if pool is None:
                for task in todo:
                    _build_shard(task)
                    bar.advance(job, len(task['entries']))
                return
            sizes = {t['name']: len(t['entries']) for t in todo}
            for record in pool.imap_unordered(_build_shard, todo):
                bar.advance(job, sizes[record['name']])
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def format_report(report: dict) -> str:
    """A short human-readable summary of a build report."""
    lines = [
        f'{report["num_samples"]} of {report["num_inputs"]} inputs in '
        f'{report["num_shards"]} shards in {report["out_dir"]} '
        f'({len(report["shards_built"])} built, '
        f'{len(report["shards_reused"])} already complete) in '
        f'{report["seconds"]:.1f}s'
    ]
    if report['skipped']:
        reasons = ', '.join(f'{k}: {v}' for k, v in sorted(
            report['skipped_by_reason'].items()))
        lines.append(f'skipped {len(report["skipped"])} ({reasons}):')
        for s in report['skipped'][:20]:
            lines.append(f'  {s["path"]}: {s["reason"]} ({s["detail"]})')
        if len(report['skipped']) > 20:
            lines.append(f'  ... {len(report["skipped"]) - 20} more in '
                         f'{REPORT_FILE}')
    gapped = report.get('audio_gaps') or []
    if gapped:
        lines.append(f'{len(gapped)} stored input(s) have holes in their '
                     'audio timestamps (silence at their place when read; '
                     'AVDecode.max_audio_gap decides which clips are '
                     'skipped):')
        for g in gapped[:10]:
            holes = ', '.join(f'{t:.3f}s ({length * 1000:.0f} ms)'
                              for t, length in g['gaps'][:4])
            lines.append(f'  {g["path"]}: {holes}')
        if len(gapped) > 10:
            lines.append(f'  ... {len(gapped) - 10} more in {REPORT_FILE}')
    return '\n'.join(lines)
