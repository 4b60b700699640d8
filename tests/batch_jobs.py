"""Stand-ins for a batch's per-input work, importable by spawned worker processes
(tests/test_output_safety.py)."""
import os
import signal
import time


def write_or_die(src, dst, opts):
    """Kills its own worker for input "die"; otherwise writes ``dst`` after a moment."""
    if src == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    with open(dst, "w") as f:
        f.write(src)


def wait_forever(src, dst, opts):
    """Says it has started (a file named by its process id in ``opts["ready"]``), then
    works for ever (tests/test_hostile3.py: a batch whose parent is killed)."""
    ready = os.path.join(opts["ready"], str(os.getpid()))
    with open(ready + ".tmp", "w") as f:
        f.write(src)
    os.replace(ready + ".tmp", ready)
    while True:
        time.sleep(0.05)
