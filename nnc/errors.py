"""Errors a user can cause. The CLI turns each into one line on stderr and its exit code."""


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
