"""The ``grade`` command line: ``definition`` says what it accepts, ``core`` runs it."""

from grader.cli.core import main, run

__all__ = ["main", "run"]
