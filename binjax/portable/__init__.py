"""Portable exports: a trained model's inference as files that run without binjax.

  stablehlo.py      writes the tile predictor as a serialized jax.export artifact (StableHLO),
                    traced with binjax's CPU kernels off so that it holds only XLA's own ops
  run_stablehlo.py  a standalone script (jax, numpy and pillow only; imports nothing from binjax)
                    that loads such an artifact, tiles a page through it and writes a 1-bit PNG;
                    launch/export.py copies it beside the artifact
"""
