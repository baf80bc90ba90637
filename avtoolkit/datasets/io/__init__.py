from .frame_conversion import CV2_INTERPOLATION, RowSink, frame_to_rgb
from .media_reader import MediaReader, TimestampGuesser

__all__ = [
    'CV2_INTERPOLATION', 'MediaReader', 'RowSink', 'TimestampGuesser',
    'frame_to_rgb'
]
