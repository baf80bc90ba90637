# Modules of this family are imported here so that they register.
from .negative_samplers import (BaseNegativeSampler, CANSSampler,
                                CurrentMiniBatchSampler,
                                CurrentSequenceSampler, SampledNegatives)

__all__ = [
    'SampledNegatives', 'BaseNegativeSampler', 'CANSSampler',
    'CurrentSequenceSampler', 'CurrentMiniBatchSampler'
]
