"""nnc's C kernels (nnc/coding/_kernels.c: the encoders' inner loops), where the install
built them and they are faster than torch's ops; else None, and the coders use torch's ops.
pip builds them wherever a C compiler is (an optional extension: a failed build installs
without them).

On x86-64 they run as compiled for AVX-512 or AVX2 with FMA. A CPU with neither (x86-64
before about 2013-2015) would run the baseline's build, which measured slower than torch's
ops (kodim23 float32 compress 4.8 s against 3.8 s, on the AVX-512 VM with NNC_KERNELS=
baseline): there the coders use torch's, unless NNC_KERNELS asks for the kernels outright.
Elsewhere (ARM) the baseline's build is the only one and is used.
"""
import importlib
import os

try:
    built = importlib.import_module(__package__ + "._kernels")   # not a .py module
except ImportError:
    built = None

kernels = built
if built is not None and built.ISA == "baseline" and not os.environ.get("NNC_KERNELS"):
    import platform
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        kernels = None
