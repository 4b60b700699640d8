"""``python -m nnc.cli`` (torchrun starts ``nnc train`` this way)."""
from . import main

if __name__ == "__main__":
    main(prog_name="nnc")
