"""A clean console: TensorFlow's native libraries print start-up noise no setting turns off.

``TF_CPP_MIN_LOG_LEVEL`` silences TensorFlow's own C++ logging, but the absl logger of the libraries
it loads writes ``WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR``, an INFO line about missing CUDA drivers and, when the devices are first listed, an
ERROR line about ``cuInit`` straight to file descriptor 2, before any Python logging exists. The CLI imports TensorFlow once,
up front, with descriptor 2 captured, drops exactly those known lines and passes everything else
through, so a real error printed during the import is still seen.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

IMPORT_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "cudart_stub.cc",  # "Could not find cuda drivers on your machine, GPU will not be used."
    "Unable to register cuDNN factory", "Unable to register cuFFT factory", "Unable to register cuBLAS factory",
    "computation placer already registered",
    "failed call to cuInit",  # no GPU: logged once, when the devices are first listed
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "oneDNN custom operations are on",  # port.cc, twice per process: informational (TF_ENABLE_ONEDNN_OPTS=0)
)


@contextlib.contextmanager
def filtered_stderr(drop: tuple[str, ...] = IMPORT_NOISE):
    """Captures what is written to descriptor 2 inside the block; re-emits every line that contains none
    of ``drop`` once the block ends (even when it raises)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a file (captured by a test runner, a notebook)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not any(noise in line for noise in drop)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def import_tensorflow_quietly() -> None:
    """``import tensorflow`` without the native libraries' start-up noise (see the module docstring)."""
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr():
        import tensorflow as tf
        tf.config.list_physical_devices()  # the device platforms log their start-up (cuInit) here
