"""nnc's C kernels (nnc/coding/_kernels.c: the encoders' inner loops), where the install
built them; else None, and the coders use torch's ops. pip builds them wherever a C compiler
is (an optional extension: a failed build installs without them)."""
import importlib

try:
    kernels = importlib.import_module(__package__ + "._kernels")   # not a .py module
except ImportError:
    kernels = None
