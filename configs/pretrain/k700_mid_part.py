# Pretraining of the paper's model on Kinetics-700 (30 clips of 1 s per video).
# Data pipeline and schedule come from their base files once those are written.
_base_ = ['../_base_/models/avbert_mid_part.py']
