"""``python -m nnc.cli`` (torchrun starts ``nnc train`` this way)."""
from . import run

if __name__ == "__main__":
    run()
