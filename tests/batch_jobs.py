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


def compress_killed_mid_write(src, dst, opts):
    """nnc's compress of one input, except that the input named ``opts["victim"]`` stops
    inside write_output's fsync (its temporary file written, not yet moved into place)
    after saying so (``handshake``/ready holds its process id), and waits there until the
    test has killed its worker and written ``handshake``/go (tests/test_cluster.py)."""
    from nnc.convert import compress_file
    hs = opts["handshake"]
    go = os.path.join(hs, "go")
    if os.path.basename(src) != opts["victim"] or os.path.exists(go):
        return compress_file(src, dst, opts)
    real = os.fsync

    def blocked(fd):
        _ready_then_wait(hs)
        real(fd)
    os.fsync = blocked
    try:
        return compress_file(src, dst, opts)
    finally:
        os.fsync = real


def compress_killed_mid_upload(src, dst, opts):
    """As :func:`compress_killed_mid_write` for an output URL on an object store: the victim
    stops inside its upload (nnc/storage.py's ``pipe_file``, the file's bytes made, none
    stored yet), says so and waits to be killed."""
    from nnc import storage
    from nnc.convert import compress_file
    hs = opts["handshake"]
    go = os.path.join(hs, "go")
    if os.path.basename(src) != opts["victim"] or os.path.exists(go):
        return compress_file(src, dst, opts)
    real = storage._fs

    def blocking_fs(url):
        fs, path = real(url)

        class Blocking:
            def __getattr__(self, name):
                return getattr(fs, name)

            def pipe_file(self, *args, **kwargs):
                _ready_then_wait(hs)
                return fs.pipe_file(*args, **kwargs)
        return Blocking(), path
    storage._fs = blocking_fs
    try:
        return compress_file(src, dst, opts)
    finally:
        storage._fs = real


def _ready_then_wait(hs: str) -> None:
    """Say this worker is at the kill point (``hs``/ready holds its process id, written
    whole) and wait until the test has killed it, or written ``hs``/go."""
    with open(os.path.join(hs, "ready.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(hs, "ready.tmp"), os.path.join(hs, "ready"))
    while not os.path.exists(os.path.join(hs, "go")):
        time.sleep(0.02)
