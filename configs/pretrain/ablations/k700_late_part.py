# Fusion ablation (Sec. 3.1): late fusion, a visual and an audio Transformer of
# 2L = 12 layer applications each and no multimodal Transformer.  Sharing as
# in the paper's model (two factorisation groups).
_base_ = ['./k700_mid_part_80k.py']

model = dict(
    neck=dict(fusion='late'),
    # no multimodal Transformer: unimodal MEP terms and unimodal CPP
    mep_head=dict(streams=('v', 'a')),
    cpp_head=dict(classifiers=('uni', )))
