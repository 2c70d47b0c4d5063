"""User-facing errors.

`UserError` is for mistakes a user can make and fix (a bad file, a missing column, an unknown model): its message
is one line that names the file or flag and the fix. The command-line drivers print it alone and exit with code 2;
internal invariants stay plain asserts and exceptions, because a traceback is the right report for a bug.
"""


class UserError(Exception):
    """A mistake in the user's input; `str(err)` is one line naming the culprit and the fix."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always exactly one line
