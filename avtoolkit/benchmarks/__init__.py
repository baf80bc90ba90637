"""Speed and memory measurements (``tools/analysis/benchmark_*.py``): a
training step of a config, the Transformers, the negative samplers and the
data path.  Nothing here is imported by training or evaluation;
``docs/benchmark_methods.md`` says what each figure measures."""
