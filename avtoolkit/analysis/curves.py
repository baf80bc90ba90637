"""Training curves from the JSON logs mmengine writes in a work dir.

mmengine's ``LogProcessor`` writes one JSON object per logged iteration to
``WORK_DIR/<timestamp>/vis_data/<timestamp>.json``; a resumed run adds a new
timestamped folder.  :func:`load_train_log` merges all of them in time order
(a later segment replaces the steps it repeats) and
:func:`plot_curves` draws every loss term and every accuracy.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

SKIP = {'iter', 'step', 'epoch', 'data_time', 'time', 'memory', 'eta'}


def find_json_logs(work_dir: str) -> List[str]:
    """The per-run JSON logs of ``work_dir``, oldest first."""
    logs = [
        path for path in glob.glob(
            osp.join(work_dir, '*', 'vis_data', '*.json'))
        if osp.basename(path) != 'scalars.json'
    ]
    if not logs:
        raise FileNotFoundError(
            f'no mmengine JSON log found under {work_dir}/*/vis_data/')
    return sorted(logs, key=lambda p: osp.basename(osp.dirname(
        osp.dirname(p))))


def load_train_log(work_dir: str) -> Dict[str, Dict[int, float]]:
    """``{scalar name: {step: value}}`` of the training entries."""
    series: Dict[str, Dict[int, float]] = {}
    for path in find_json_logs(work_dir):
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}:{line_no}: not JSON') from err
                if 'step' not in entry or entry.get('mode', 'train') != \
                        'train' or any(k.startswith(('val', 'test'))
                                       for k in entry if '/' in k):
                    continue
                step = int(entry['step'])
                for key, value in entry.items():
                    if key in SKIP or not isinstance(value, (int, float)):
                        continue
                    series.setdefault(key, {})[step] = float(value)
    return series


def plot_curves(work_dir: str, out_file: Optional[str] = None,
                keys: Optional[Sequence[str]] = None) -> str:
    """Write a PNG of the loss (left) and accuracy (right) curves.

    Args:
        work_dir: the run's work dir.
        out_file: PNG path; default ``WORK_DIR/curves.png``.
        keys: scalar names to draw; default every ``loss*`` and ``acc*``.

    Returns:
        The path written.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    series = load_train_log(work_dir)
    if keys is None:
        keys = sorted(k for k in series if k.startswith(('loss', 'acc')))
    missing = [k for k in keys if k not in series]
    if missing:
        raise KeyError(f'not in the log: {missing}; logged: {sorted(series)}')
    if not keys:
        raise ValueError(f'no loss or accuracy scalars in the log of '
                         f'{work_dir}; logged: {sorted(series)}')
    losses = [k for k in keys if not k.startswith('acc')]
    accs = [k for k in keys if k.startswith('acc')]
    panels = [(losses, 'loss'), (accs, 'accuracy')]
    panels = [p for p in panels if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4),
                             squeeze=False)
    for ax, (names, label) in zip(axes[0], panels):
        for name in names:
            steps = sorted(series[name])
            ax.plot(steps, [series[name][s] for s in steps], label=name)
        ax.set_xlabel('iteration')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    fig.suptitle(osp.basename(osp.normpath(work_dir)))
    fig.tight_layout()
    out_file = out_file or osp.join(work_dir, 'curves.png')
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
