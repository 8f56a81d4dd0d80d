"""Ablation sweeps: config files with `get_sweep()` beside `get_config()`, run by launch/sweep.py."""
