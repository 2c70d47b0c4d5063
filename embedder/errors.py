"""User-facing errors, and how a command-line tool reports them.

`UserError` is for mistakes a user can make and fix (a bad file, a missing column, an unknown model): its message
is one line that names the file or flag and the fix. The command-line drivers print it alone and exit with code 2;
internal invariants stay plain asserts and exceptions, because a traceback is the right report for a bug.
`one_line_errors()` is that driver for tools whose outputs are written atomically at the end (evaluate.py,
embedder.mine): a UserError exits 2, a failed write (a full disk) or an interrupt exits 1 or 130, one line each.
"""

import contextlib
import importlib.util
import sys


class UserError(Exception):
    """A mistake in the user's input; `str(err)` is one line naming the culprit and the fix."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always exactly one line


class UserErrors(UserError):
    """Several independent mistakes found in one pass over the inputs; `lines` holds one line for each."""

    def __init__(self, errors: list[UserError]):
        self.lines = [str(e) for e in errors]
        Exception.__init__(self, "\n".join(self.lines))


def collect_errors(*checks) -> list:
    """Run every check (a callable); return their results, or raise every UserError they raised together, so one
    run reports all the mistakes that are cheap to find (a bad --train file and an output conflict alike)."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except UserErrors as err:
            errors += [UserError(line) for line in err.lines]
        except UserError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise UserErrors(errors)
    return results


@contextlib.contextmanager
def one_line_errors():
    """Report what stops a command as one line on stderr and exit: 2 for UserError, 1 for a failed write, 130 for
    Ctrl-C. Only for commands that write nothing until their last atomic write, so "nothing was written" holds."""
    try:
        yield
    except UserError as err:
        print(error_lines(err), file=sys.stderr)
        sys.exit(err.exit_code)
    except OSError as err:  # the disk filled up or went away while writing: the atomic write left no half file
        print(f"error: writing the results failed ({err.strerror or err}); nothing was written", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("stopped: interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)


def require(*modules: str, extra: str) -> None:
    """UserError naming the pip command when an optional module (an extra of setup.cfg) is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"this needs {', '.join(missing)}: pip install 'embedder[{extra}]' "
                        f"(or pip install {' '.join(missing)})")


def error_lines(err: UserError) -> str:
    """What a command prints for a UserError: 'error: …', one line per mistake."""
    return "\n".join(f"error: {line}" for line in getattr(err, "lines", [str(err)]))
