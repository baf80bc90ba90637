# Fusion ablation (Sec. 3.1): early fusion, a single multimodal Transformer of
# 2L = 12 layer applications on the embedded CNN features of both modalities.
# Sharing as in the paper's model (the factorisation has one group here).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(fusion='early'),
    # one multimodal Transformer: only the joint MEP term and multimodal CPP
    mep_head=dict(streams=('av', )),
    cpp_head=dict(classifiers=('multi', )))
