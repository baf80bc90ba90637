"""What to do with media that cannot give a sample: one policy for all
loaders.

Kinds of bad input and where they are detected
----------------------------------------------
=====================  =====================================================
reason                 raised by
=====================  =====================================================
``unreadable``         the container cannot be opened (missing, empty,
                       corrupt header, index at the end of a cut file)
``no_video``           no video stream where the pipeline needs one
``no_audio``           no audio stream where the pipeline needs one
``unknown_duration``   neither the streams nor the container declare a length
``too_short``          the usable span is shorter than the requested clips
                       (with ``short_policy='error'`` of ``AVSampleClips``)
``truncated``          decoding stopped before the requested frames/samples
                       although the header declared them
``decode_error``       the decoder failed on the data (corrupt packets)
``bad_timestamps``     frames without usable timestamps
``audio_gap``          more than ``max_audio_gap`` seconds of a clip's audio
                       window fall in holes of the audio timestamps
                       (:class:`~avtoolkit.datasets.transforms.AVDecode`)
``unreadable_shard``   a tar shard could not be opened or read to the end
``pipeline_error``     any other exception raised while preparing a sample
=====================  =====================================================

Odd frame rates (variable, fractional, very low), multichannel audio and
unusual sample rates are *not* bad inputs: frames are chosen by their
timestamps and audio is downmixed and resampled while decoding.

Inputs used after a policy changed them
---------------------------------------
Some inputs are not dropped but used differently from what the pipeline
asked for; each such decision is counted and reported next to the skips,
under its own name (:data:`ADJUSTMENTS`):

=====================  =====================================================
adjustment             decided by
=====================  =====================================================
``looped``             ``AVSampleClips(short_policy='loop')``: the video is
                       shorter than the clips need and is repeated
``audio_filled``       ``AVDecode``: part of a clip's audio window (at most
                       ``max_audio_gap`` seconds) falls in a hole of the
                       audio timestamps and was filled with silence
=====================  =====================================================

The transform appends a record (``reason``, ``source``, ``detail``) to
``results['bad_inputs']``; :class:`~avtoolkit.datasets.transforms.PackAVInputs`
copies that list into the metainfo, where the skip records of the same
sample join it.  Holding the last frame or mirroring at most
``tail_tolerance`` (0.1 s) of audio at the very end of a file is part of
normal decoding and is not reported; a larger gap is ``truncated``.

List entries
------------
Files named by a list but missing on disk (or directories) are found once,
when the list is loaded.  In skip mode they are left out and reported as one
record (``reason='unreadable'``, ``count`` entries, ``examples``) carrying a
``key``: the dataset attaches it to the first sample each process returns,
and :class:`BadInputCounter` counts a keyed record once however many worker
processes, ranks or resumed runs deliver it again.

The policy
----------
:class:`BadInputPolicy` has two modes:

* ``'skip'`` (default for training): the sample is dropped, counted by reason
  and replaced by another one.  The dropped sample's record (reason, file,
  message) travels to the main process inside the *next sample that is
  returned*, in its ``data_samples.metainfo['bad_inputs']`` (a list, empty
  when nothing was skipped).  This works across DataLoader worker processes
  without shared state: every record reaches the main process exactly once
  (a record is lost only if a worker is killed before returning another
  sample; in an iterable dataset each sample is held back until the next
  one is ready, so the records of inputs skipped after the last good
  sample of an epoch go with that sample; records carried by the samples
  of an incomplete last batch that ``drop_last`` drops, or of an epoch
  without a good sample, go with the first sample of the next epoch of the
  same dataset copy, keyed so that they are counted once, and are lost
  only when that epoch never comes; the worker-local counts are also
  logged by the worker itself, see below).  ``max_retries`` consecutive
  failures raise :class:`TooManyBadInputs` so that a broken configuration
  (every sample failing) stops the job instead of spinning.
* ``'raise'`` (default for evaluation): the first bad input raises
  :class:`BadInputError` whose message names the file.

Nothing is ever replaced by zeros.

Counting in the main process
----------------------------
An engine hook aggregates the records.  :func:`collect_bad_inputs` pulls them
out of a collated batch (works with ``pseudo_collate`` and
``default_collate``); :class:`BadInputCounter` keeps counts by reason, keeps
the first few file names of each reason, sums across ranks
(:meth:`BadInputCounter.all_reduce`), formats a log line and dumps JSON.  A
hook should

1. in ``after_train_iter`` / ``after_val_iter`` / ``after_test_iter``: call
   ``counter.update(collect_bad_inputs(data_batch))``;
2. every ``interval`` iterations, if anything was counted since the last
   report: log ``counter.format()`` and write ``counter.as_scalars()`` into
   the message hub (``bad_input/<reason>``);
3. in ``after_train`` / ``after_val_epoch`` / ``after_test_epoch``: call
   ``counter.all_reduce()`` (all ranks), log the totals on rank 0 and dump
   them with ``counter.dump(work_dir/'bad_inputs.json')``.

Worker-side logging
-------------------
Each process also keeps :data:`LOCAL_COUNTER`, a process-local counter that
the datasets update when they skip.  It logs a summary every ``log_interval``
skips (``0`` disables it), so that counts appear in the log even without the
hook; those lines are per process, the hook's totals are the job's.
"""
import logging
import os
import traceback
from collections import Counter, OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from mmengine.logging import print_log

from avtoolkit.utils.atomic import write_json_atomic

REASONS = ('unreadable', 'no_video', 'no_audio', 'unknown_duration',
           'too_short', 'truncated', 'decode_error', 'bad_timestamps',
           'audio_gap', 'unreadable_shard', 'pipeline_error')

# Inputs that were used, changed by a policy (see the module docstring).
ADJUSTMENTS = ('looped', 'audio_filled')
# What a report says about each adjustment.
ADJUSTMENT_TEXT = {
    'looped': "shorter than the clips, repeated (short_policy='loop')",
    'audio_filled': 'holes in the audio timestamps filled with silence '
                    '(max_audio_gap)',
}

MODES = ('skip', 'raise')

# Key of the list of skip records in a sample's metainfo.
META_KEY = 'bad_inputs'


class BadInputError(Exception):
    """A media file (or shard) cannot give the requested sample.

    Args:
        reason: one of :data:`REASONS`.
        source: the file name, URL or ``shard:key`` of the input.
        detail: a human-readable explanation.
    """

    def __init__(self, reason: str, source: str, detail: str = ''):
        if reason not in REASONS:
            raise ValueError(f'unknown bad-input reason {reason!r}; '
                             f'expected one of {REASONS}')
        self.reason = reason
        self.source = str(source)
        self.detail = detail
        super().__init__(f'{reason}: {self.source}' +
                         (f' ({detail})' if detail else ''))

    def __reduce__(self):
        # Exceptions cross process boundaries (DataLoader workers, pools).
        return (self.__class__, (self.reason, self.source, self.detail))

    def record(self) -> dict:
        """A small picklable record of this failure."""
        return dict(reason=self.reason, source=self.source,
                    detail=self.detail[:300])


class TooManyBadInputs(RuntimeError):
    """Raised when ``max_retries`` samples in a row were bad."""


def as_bad_input(exc: BaseException, source: str) -> BadInputError:
    """Turn any exception raised while preparing ``source`` into a
    :class:`BadInputError` (kept as is when it already is one)."""
    if isinstance(exc, BadInputError):
        return exc
    detail = f'{type(exc).__name__}: {exc}'
    return BadInputError('pipeline_error', source, detail)


class BadInputCounter:
    """Counts of bad inputs by reason, with a few example sources each.

    Skipped inputs (:data:`REASONS`) and inputs used after a policy change
    (:data:`ADJUSTMENTS`) are counted alike and reported apart:
    :attr:`total` (= :attr:`skipped`) counts the skips, :attr:`adjusted`
    the others.  A record with a ``key`` is counted once, whatever number
    of times it arrives (also across :meth:`merge`, :meth:`all_reduce` and
    :meth:`load_state_dict`); it may stand for ``count`` inputs and carry
    ``examples``.

    Args:
        max_examples: how many source names to keep per reason.
    """

    def __init__(self, max_examples: int = 5):
        self.max_examples = max_examples
        self.counts: Counter = Counter()
        self.examples: Dict[str, List[str]] = {}
        # key -> {'reason', 'count'} of the keyed records counted so far
        self.keyed: Dict[str, dict] = {}
        self._reported = 0

    @property
    def skipped(self) -> int:
        return int(sum(c for r, c in self.counts.items()
                       if r not in ADJUSTMENTS))

    @property
    def adjusted(self) -> int:
        return int(sum(c for r, c in self.counts.items()
                       if r in ADJUSTMENTS))

    @property
    def total(self) -> int:
        """The number of skipped inputs."""
        return self.skipped

    def _example(self, reason: str, source: str) -> None:
        examples = self.examples.setdefault(reason, [])
        if source and len(examples) < self.max_examples \
                and source not in examples:
            examples.append(source)

    def add(self, reason: str, source: str = '', count: int = 1,
            key: Optional[str] = None,
            examples: Sequence[str] = ()) -> bool:
        """Count ``count`` inputs of ``reason``; returns False (and counts
        nothing) when ``key`` was counted before."""
        if key is not None:
            if key in self.keyed:
                return False
            self.keyed[key] = dict(reason=reason, count=int(count))
        self.counts[reason] += int(count)
        for src in list(examples) or [source]:
            self._example(reason, str(src) if src else '')
        return True

    def update(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Add records (dicts with ``reason`` and ``source``, optionally
        ``count``, ``key`` and ``examples``); returns how many were new."""
        n = 0
        for rec in records:
            n += self.add(rec['reason'], rec.get('source', ''),
                          rec.get('count', 1), rec.get('key'),
                          rec.get('examples') or ())
        return n

    def merge(self, other: 'BadInputCounter') -> None:
        keyed_counts = Counter()
        for value in other.keyed.values():
            keyed_counts[value['reason']] += value['count']
        for reason, count in other.counts.items():
            self.counts[reason] += count - keyed_counts.get(reason, 0)
        for key, value in other.keyed.items():
            if key not in self.keyed:
                self.keyed[key] = dict(value)
                self.counts[value['reason']] += value['count']
        for reason in other.counts:
            for src in other.examples.get(reason, []):
                self._example(reason, src)
        self.counts = Counter({r: c for r, c in self.counts.items() if c})

    def all_reduce(self) -> None:
        """Sum the counts over all ranks (no-op when not distributed).

        Every rank must call it.  Examples are gathered too (up to
        ``max_examples`` per reason); a keyed record seen on several ranks
        counts once."""
        from mmengine.dist import all_gather_object, get_world_size
        if get_world_size() <= 1:
            return
        states = all_gather_object(self.state_dict())
        merged = BadInputCounter(self.max_examples)
        for state in states:
            part = BadInputCounter(self.max_examples)
            part.load_state_dict(state)
            merged.merge(part)
        self.counts, self.examples = merged.counts, merged.examples
        self.keyed = merged.keyed

    def state_dict(self) -> dict:
        return dict(counts=dict(self.counts), examples=dict(self.examples),
                    keyed={k: dict(v) for k, v in self.keyed.items()})

    def load_state_dict(self, state: Mapping) -> None:
        self.counts = Counter(state.get('counts', {}))
        self.examples = {k: list(v)
                         for k, v in state.get('examples', {}).items()}
        self.keyed = {k: dict(v) for k, v in state.get('keyed', {}).items()}

    def as_scalars(self, prefix: str = 'bad_input/') -> Dict[str, int]:
        """``{'bad_input/<reason>': count, 'bad_input/total': skipped,
        'bad_input/adjusted': adjusted}`` (the last only when non-zero)."""
        out = OrderedDict((prefix + r, int(c))
                          for r, c in sorted(self.counts.items()))
        out[prefix + 'total'] = self.skipped
        if self.adjusted:
            out[prefix + 'adjusted'] = self.adjusted
        return out

    def format(self) -> str:
        """One line of totals (``bad inputs: none`` only when nothing at all
        was skipped or adjusted), then the examples of every reason."""
        if not self.counts:
            return 'bad inputs: none'
        skips = sorted(r for r in self.counts if r not in ADJUSTMENTS)
        adjusts = sorted(r for r in self.counts if r in ADJUSTMENTS)
        if skips:
            parts = [f'{r}={self.counts[r]}' for r in skips]
            head = f'bad inputs: {self.skipped} skipped ({", ".join(parts)})'
        else:
            head = 'bad inputs: 0 skipped'
        if adjusts:
            parts = [f'{r}={self.counts[r]}' for r in adjusts]
            head += (f'; {self.adjusted} used after a policy change '
                     f'({", ".join(parts)})')
        lines = [head]
        for reason in skips + adjusts:
            text = ADJUSTMENT_TEXT.get(reason)
            examples = self.examples.get(reason)
            if examples or text:
                lines.append(f'  {reason}' + (f' [{text}]' if text else '')
                             + (': e.g. ' + ', '.join(examples)
                                if examples else ''))
        return '\n'.join(lines)

    def dump(self, path: str) -> None:
        """Write the counts and examples as JSON (atomically): ``total``
        (skipped), ``skipped``, ``adjusted``, ``counts``, ``examples`` and
        ``keyed``."""
        data = dict(total=self.total, skipped=self.skipped,
                    adjusted=self.adjusted, **self.state_dict())
        write_json_atomic(path, data, indent=2, sort_keys=True)

    def has_news(self) -> bool:
        """True if anything was counted since the last call."""
        now = self.skipped + self.adjusted
        news = now != self._reported
        self._reported = now
        return news


# The counter of this process (one per DataLoader worker, one in the main
# process); datasets update it whenever they skip a sample.
LOCAL_COUNTER = BadInputCounter()


class BadInputPolicy:
    """How a dataset treats a sample that failed.

    Args:
        mode: ``'skip'`` (drop, count, take another sample) or ``'raise'``
            (raise :class:`BadInputError` naming the file).
        max_retries: in ``'skip'`` mode, the number of consecutive failures
            after which :class:`TooManyBadInputs` is raised.
        log_interval: log this process's counts every ``log_interval`` skips
            (0: never).
        log_traceback: also log the traceback of ``pipeline_error`` failures
            (the first one of each exception type), which are more often bugs
            than bad media.
        counter: the counter to update (default: :data:`LOCAL_COUNTER`).
    """

    def __init__(self, mode: str = 'skip', max_retries: int = 50,
                 log_interval: int = 100, log_traceback: bool = True,
                 counter: Optional[BadInputCounter] = None):
        if mode not in MODES:
            raise ValueError(f'bad-input mode must be one of {MODES}, '
                             f'got {mode!r}')
        if int(max_retries) < 1:
            raise ValueError(f'max_retries must be >= 1, got {max_retries}')
        self.mode = mode
        self.max_retries = int(max_retries)
        self.log_interval = int(log_interval)
        self.log_traceback = log_traceback
        self.counter = counter if counter is not None else LOCAL_COUNTER
        self._traced_types = set()

    @classmethod
    def build(cls, cfg, test_mode: bool = False) -> 'BadInputPolicy':
        """From ``None`` (defaults: skip in training, raise in test mode), a
        mode string, a dict of arguments or a policy instance."""
        if isinstance(cfg, BadInputPolicy):
            return cfg
        if cfg is None:
            return cls(mode='raise' if test_mode else 'skip')
        if isinstance(cfg, str):
            return cls(mode=cfg)
        if isinstance(cfg, Mapping):
            cfg = dict(cfg)
            cfg.setdefault('mode', 'raise' if test_mode else 'skip')
            return cls(**cfg)
        raise TypeError(f'bad_input must be None, a mode string, a dict or a '
                        f'BadInputPolicy, got {type(cfg).__name__}')

    @property
    def skips(self) -> bool:
        return self.mode == 'skip'

    def handle(self, exc: BaseException, source: str) -> dict:
        """Deal with one failure of ``source``.

        Raises the :class:`BadInputError` in ``'raise'`` mode; in ``'skip'``
        mode counts it and returns its record.
        """
        err = as_bad_input(exc, source)
        if not self.skips:
            if err is exc:
                raise err
            raise err from exc
        if err.reason == 'pipeline_error' and self.log_traceback:
            key = type(exc).__name__
            if key not in self._traced_types:
                self._traced_types.add(key)
                print_log(
                    f'Skipping {source}: unexpected {key} while preparing '
                    'the sample (further ones are only counted):\n' +
                    ''.join(traceback.format_exception(
                        type(exc), exc, exc.__traceback__)),
                    logger='current', level=logging.WARNING)
        self.counter.add(err.reason, err.source)
        if self.log_interval > 0 \
                and self.counter.total % self.log_interval == 0:
            print_log(f'[pid {os.getpid()}] ' + self.counter.format(),
                      logger='current', level=logging.WARNING)
        return err.record()

    def too_many(self, records: Sequence[dict]) -> TooManyBadInputs:
        reasons = Counter(r['reason'] for r in records)
        last = records[-1] if records else {}
        return TooManyBadInputs(
            f'{len(records)} consecutive samples failed ({dict(reasons)}); '
            f'last: {last.get("source")}: {last.get("detail")}. Check the '
            'data and the pipeline configuration.')


def input_name(results: dict) -> str:
    """How errors and reports name the input of a pipeline: its
    ``input_name`` (set by datasets that know more than a file name, e.g.
    ``SHARD#KEY (source: PATH)`` for a shard record), else its
    ``filename``."""
    return str(results.get('input_name') or results.get('filename')
               or '<bytes>')


def adjustment_record(reason: str, source: str, detail: str = '') -> dict:
    """The record of an input used after a policy changed it (one of
    :data:`ADJUSTMENTS`)."""
    if reason not in ADJUSTMENTS:
        raise ValueError(f'unknown adjustment {reason!r}; expected one of '
                         f'{ADJUSTMENTS}')
    return dict(reason=reason, source=str(source), detail=detail[:300])


def attach_records(sample: dict, records: Sequence[dict]) -> dict:
    """Store skip records in the metainfo of ``sample['data_samples']``,
    before the records the sample already carries (its own adjustments).

    Samples without a ``data_samples`` element (pipelines that do not pack)
    get a top-level ``bad_inputs`` key instead.
    """
    records = list(records)
    data_sample = sample.get('data_samples') if isinstance(sample,
                                                           dict) else None
    if data_sample is not None and hasattr(data_sample, 'set_metainfo'):
        own = list(data_sample.metainfo.get(META_KEY) or [])
        data_sample.set_metainfo({META_KEY: records + own})
    elif isinstance(sample, dict):
        sample[META_KEY] = records + list(sample.get(META_KEY) or [])
    return sample


def collect_bad_inputs(data_batch: Any) -> List[dict]:
    """The skip records carried by a collated batch (or a list of samples).

    Understands batches from ``pseudo_collate`` / ``default_collate``
    (``{'inputs': ..., 'data_samples': [DataSample, ...]}``) and lists of
    sample dicts.
    """
    records: List[dict] = []
    if isinstance(data_batch, Mapping):
        samples = data_batch.get('data_samples')
        if samples is not None:
            if not isinstance(samples, (list, tuple)):
                samples = [samples]
            for ds in samples:
                recs = ds.metainfo.get(META_KEY) if hasattr(
                    ds, 'metainfo') else None
                if recs:
                    records.extend(recs)
        top = data_batch.get(META_KEY)
        if top:
            for item in top:
                if isinstance(item, Mapping):
                    records.append(dict(item))
                elif isinstance(item, (list, tuple)):
                    records.extend(dict(r) for r in item)
    elif isinstance(data_batch, (list, tuple)):
        for sample in data_batch:
            records.extend(collect_bad_inputs(sample))
    return records
