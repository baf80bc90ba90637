"""Reading what a model or a run is: parameter counts, training curves."""
