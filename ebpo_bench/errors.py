"""The one exception type for bad input: reported by the CLI as one line with exit code 2.

It lives below every layer (no imports), so any module can raise it without importing the CLI.
"""


class UserError(Exception):
    """An input problem to report in one line with exit code 2: say what is wrong and how to fix it."""


class SpecError(UserError, ValueError):
    """A spec problem, phrased for the user: file, field path, what is wrong, what to do."""


#: exit status of ``ebpo-bench run`` after a scheduler-requested stop (``interrupt.Interrupted.requeue``);
#: the launchers tell it from a failure by it and requeue the run
STOP_EXIT_CODE = 3
