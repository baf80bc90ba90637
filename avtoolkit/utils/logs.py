"""Keeping mmengine's logs readable in tools that build models outside the
Runner."""
import logging

from mmengine.logging import MMLogger
from torch import nn

__all__ = ['init_weights_quietly']


def init_weights_quietly(module: nn.Module) -> None:
    """``module.init_weights()`` without mmengine's per-parameter report
    (hundreds of INFO lines on the console when no log file is open)."""
    if not hasattr(module, 'init_weights'):
        return
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)
