"""The record types and plumbing every layer stands on: results, outcomes, evidence, errors, files,
the clock, a grading's time budget.
"""
