"""Export the pretrained CNN of an avtoolkit checkpoint for mmaction2.

``python tools/convert/to_mmaction.py CHECKPOINT OUT [--modality visual|audio]
[--config CONFIG] [--prefix backbone.] [--force]``

OUT holds ``backbone.*`` weights (and a ``meta`` dict) that a plain mmaction2
recognizer with the same backbone settings loads through ``load_from=OUT``;
with ``--prefix ''`` the keys are bare, for the backbone's ``pretrained=OUT``.
See :mod:`avtoolkit.models.convert` for what is checked.
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from avtoolkit.models.convert import run_cli, to_mmaction_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(to_mmaction_main))
