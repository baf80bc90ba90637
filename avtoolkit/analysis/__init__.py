"""Tools that read what a run wrote: training curves, parameter counts."""
