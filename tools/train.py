"""Train a model.  ``python tools/train.py CONFIG [options]``; see ``--help``."""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from avtoolkit.apis.train import main  # noqa: E402

if __name__ == '__main__':
    main()
