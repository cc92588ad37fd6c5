"""The inference bundle: a trained run's student, its word vectors and front-end settings, written by
export.py (python -m experiments.export) and read by load.py with jax, numpy, safetensors and the
front-ends alone."""
