"""Errors a user can cause. The CLI turns each into one line on stderr and its exit code."""


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a newline as \\n): a message is one
    line whatever the file names in it, so a name cannot forge a line of its own."""
    return "".join(c if c.isprintable() or c == " " else
                   c.encode("unicode_escape").decode("ascii") for c in text)


class NNCError(Exception):
    exit_code = 1


class InputError(NNCError):
    """The input file is missing, unreadable, or not a supported image."""
    exit_code = 3


class FormatError(NNCError):
    """A .nnc file is corrupt, truncated, or of an unsupported version."""
    exit_code = 4


class OutputError(NNCError):
    """The output cannot be written (exists, directory missing, disk full...)."""
    exit_code = 5


class DeviceError(NNCError):
    """The device asked for does not exist here (--device cuda without a GPU)."""
    exit_code = 2


class ModelError(NNCError):
    """The weights are missing, corrupt, or not the ones a file was made with."""
    exit_code = 6


class NNCWarning(UserWarning):
    """Something a user should know that does not stop the work (a slower path taken, a
    colour profile left out); the CLI shows it as one "nnc: warning:" line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that temporary files are removed on the way out
    (a KeyboardInterrupt, so that every layer that lets Ctrl-C through lets it through)."""


class ClusterError(NNCError):
    """A Dask scheduler named (--scheduler) cannot be used: unreachable, or dask missing."""
    exit_code = 2
