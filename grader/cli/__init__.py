"""The ``grade`` command line: ``definition`` says what it accepts, ``core`` runs it.

A command imports what only it uses inside its own function (marked ``# lazy: start-up``), so
``grade --help`` and a mistyped option load 17 of the grader's modules and answer in about half
a second; importing every command's modules (paramiko, SQLAlchemy, the class page) takes 4 to
5 seconds on a lab machine. Elsewhere in the grader an import inside a function says why with
``# lazy:`` too (the self-check's Python has no such library, an optional library, the pytest
plugin); tests/test_quality.py holds every such import to that.
"""

from grader.cli.core import main, run

__all__ = ["main", "run"]
