"""python -m grader: the same as the ``grade`` command."""

from grader.cli import run

run()
