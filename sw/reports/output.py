"""Result records shared by every command that writes results: provenance, JSON, console tables."""

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ... import __version__
from ...sim.toolchain import tool_versions
from .tables import console, error_console, progress_printer, table

__all__ = ["SCHEMA_VERSION", "provenance", "replacing", "write_json", "write_bytes", "save_arrays", "console", "error_console", "progress_printer", "table"]

SCHEMA_VERSION = 1



def provenance(command, accelerator=None, backend=None, dma=None, seed=None, **extra) -> dict:
    record = {"schema_version": SCHEMA_VERSION, "accelkit_version": __version__, "command": command,
              "argv": sys.argv[1:], "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "tool_versions": tool_versions()}
    if accelerator is not None:
        record["accelerator"] = accelerator.name
        record["params"] = dict(accelerator.params)
    if backend is not None:
        record["backend"] = backend
    if dma is not None:
        record["dma"] = dma.as_dict()
    if seed is not None:
        record["seed"] = seed
    record.update(extra)
    return record


@contextlib.contextmanager
def replacing(path):
    """Write a file durably: yields a temporary file object beside ``path``, renamed onto it on success.

    A crash, a full disk or an exception leaves the old file (or none) in place,
    never a truncated one; the temporary file is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def write_json(path, record):
    """``record`` as indented JSON at ``path`` (written durably, see :func:`replacing`)."""
    text = json.dumps(record, indent=2, default=_plain) + "\n"
    with replacing(path) as handle:
        handle.write(text.encode())


def write_bytes(path, data):
    """``data`` at ``path``, written durably."""
    with replacing(path) as handle:
        handle.write(bytes(data))


def save_arrays(path, arrays):
    """One array as .npy, several as .npz, at exactly ``path`` (numpy would append a suffix), durably."""
    import numpy as np
    with replacing(path) as handle:
        if len(arrays) == 1:
            np.save(handle, arrays[0], allow_pickle=False)
        else:
            np.savez(handle, *arrays)


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)
