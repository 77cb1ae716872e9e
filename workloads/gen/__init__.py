"""Generators of the built-in sets: each `generate(opts)` reads its options and returns conversations.

They are deterministic functions of their options (including `seed=`, default 0): the shipped files
in datasets/ are their output with default options, written by `datasets/regenerate.py`.
"""
