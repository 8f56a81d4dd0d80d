"""binjax: deep-learning image binarization in JAX/Flax."""
