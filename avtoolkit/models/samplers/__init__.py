# Modules of this family are imported here so that they register.
from .negative_samplers import (BaseNegativeSampler, CANSSampler,
                                CurrentMiniBatchSampler,
                                CurrentSequenceSampler)

__all__ = [
    'BaseNegativeSampler', 'CANSSampler', 'CurrentSequenceSampler',
    'CurrentMiniBatchSampler'
]
