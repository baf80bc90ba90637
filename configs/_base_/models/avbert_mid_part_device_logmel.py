# avbert_mid_part.py with the log-mel computed on the device by the data
# preprocessor (av_data_preprocessor.py: av_device_log_mel_preprocessor).
_base_ = ['./avbert_mid_part_arch.py', './av_data_preprocessor.py']

model = dict(data_preprocessor=_base_.av_device_log_mel_preprocessor)
