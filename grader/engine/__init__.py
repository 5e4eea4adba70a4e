"""Grading itself: rubrics, packs and their checks, the runner, scoring, per-student variants."""
