"""One door per action: each thing a user can do is one function here.

A front end (the command line, ``grader.cli``; the web, when it comes) turns what it was given
(argv, a form, JSON) into a typed request once, with every check of its own input made there,
calls one function here and renders what it returns. The function does the work and knows no
terminal and no HTTP: it says nothing, writes no file a front end could write, and reads no
option a request does not carry. A rule (who may see a mark, what an override may set, when an
export is refused) lives here or below, never in a front end, so two front ends cannot
disagree.

Each function takes the course (an open ``Gradebook``), who acts (``Actor``) and its request (a
frozen dataclass), and returns a result (a frozen dataclass). What is refused raises
``grader.base.errors.InputError`` with the message a person reads; ``NotFound`` when an actor
asks for what they may not know exists (another student's mark), ``NotAllowed`` when a student
asks for what only staff do.

* ``grader.actions.book``: the gradebook: marks, history, explain, override, withdraw, accept,
  drop, import, export, page, backup.
* ``grader.actions.course``: a course's gradings: run a lab, grade whoever is due, regrade a lab
  with its current rubric, the Slurm shard script.
* ``grader.actions.prove``: a pack's checks proved: on its simulated scenarios, or with mutants
  of the lab done right (simulated, or live on a VM reached as a grading reaches it).
* ``grader.actions.sim``: a pack's simulated VMs: a demonstration, left running, taken down,
  graded as a class.
"""
