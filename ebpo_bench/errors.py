"""The one exception type for bad input: reported by the CLI as one line with exit code 2.

It lives below every layer (no imports), so any module can raise it without importing the CLI.
"""


class UserError(Exception):
    """An input problem to report in one line with exit code 2: say what is wrong and how to fix it."""


class SpecError(UserError, ValueError):
    """A spec problem, phrased for the user: file, field path, what is wrong, what to do."""


class StopRequested(Exception):
    """A run stopped at a safe point on request (SLURM's pre-timeout signal, preemption): its checkpoint
    is saved and the same command resumes it. The CLI exits with ``STOP_EXIT_CODE``."""


#: exit status of ``ebpo-bench run`` after a requested stop (the launchers tell it from a failure by it)
STOP_EXIT_CODE = 3
