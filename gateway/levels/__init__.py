"""Level transforms: a Level built from other levels (synthesized pyramid levels,
dtype variants, display windows, label images). Each reads through the levels it wraps.
"""
