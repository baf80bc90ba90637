"""Convert the checkpoint released with the AVBERT paper into avtoolkit's.

``python tools/convert/from_official.py CHECKPOINT OUT [--config CONFIG ...]
[--trust] [--visual-prefix P] [--audio-prefix P] [--rename-prefix OLD=NEW ...]
[--print-table] [--force]``

The CNNs are mapped onto the release-variant model (default: the release
visual and audio CNN base configs); the ``_B`` caches are dropped and the
missing / unexpected keys are printed.  Without ``--trust`` the file is read
with ``torch.load(weights_only=True)`` and its pickled ``cfg`` as a plain dict.
See :mod:`avtoolkit.models.convert` for the key mapping and its assumptions.
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.models.convert import from_official_main, run_cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(from_official_main))
