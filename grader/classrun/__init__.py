"""Grading a class: the roster, the batch, progress, cross-student flags, regrading a folder."""
