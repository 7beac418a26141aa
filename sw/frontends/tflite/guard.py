"""Running a model where a native kernel may take the process down.

LiteRT's reference int8 SOFTMAX aborts (SIGABRT, from an assertion in its
fixed-point division) when the sum of exponentials reaches 512, which a flat
1000-class input does. Whether it happens depends on the activations, so it
cannot be ruled out from the file: a model with such an op runs in a forked
child, and a child killed by a signal becomes a ``ModelError`` that says what
happened instead of a dead ``accelkit``.

The child's standard output and error are relayed through pipes, so callers
that capture ``sys.stdout`` (tests, notebooks) still see everything.
"""

import os
import selectors
import signal
import sys

from ....errors import ModelError
from .validate import SOFTMAX_ABORT_DEPTH, read_checked_model, softmax_abort_risk, softmax_scaling_aborts

__all__ = ["run_contained", "run_in_child"]


def _uses_reference_kernels(args):
    # `accelkit diff` has no --cpu-kernels: its LiteRT paths include the reference kernels
    return (getattr(args, "cpu_kernels", "ref") == "ref" or bool(getattr(args, "compare", None))
            or bool(getattr(args, "labels", None)))


def run_contained(dispatch, args):
    """``dispatch(args)`` for ``accelkit run``, after checking the model; forked if a kernel may abort."""
    from ...zoo import resolve_model
    path = resolve_model(args.model)
    model = read_checked_model(path)       # LiteRT and TVM never see a model that fails these checks
    def per_channel(op):
        scales = model.tensors[op.inputs[0]].scales
        return (f" (its input is quantized per channel, {len(scales)} scales, which LiteRT's SOFTMAX reads as "
                "scale 0)") if len(scales) > 1 else ""

    if _uses_reference_kernels(args):
        for op, product in softmax_scaling_aborts(model):
            raise ModelError(
                f"{path.name}: operator {op.index} (SOFTMAX) has beta x input scale = {product:.3g}, at most 2^-26"
                f"{per_channel(op)}; "
                "LiteRT's reference SOFTMAX kernel cannot scale that and aborts the process. Use --cpu-kernels "
                "optimized (without --compare ref or --labels, which need the reference kernels), or fix the "
                "model's softmax input scale")
    risky = softmax_abort_risk(model) if _uses_reference_kernels(args) else []
    if not risky:
        return dispatch(args)
    try:
        return run_in_child(dispatch, args)
    except _KilledBySignal as killed:
        ops = ", ".join(f"operator {op.index} ({model.tensors[op.inputs[0]].shape[-1]} classes)" for op in risky)
        raise ModelError(
            f"the run of {path.name} was killed by {killed.name} inside a native kernel. {path.name} has an int8 "
            f"SOFTMAX over {SOFTMAX_ABORT_DEPTH} or more classes ({ops}), on which LiteRT's reference kernel "
            "aborts when most classes are within one step of the largest (a flat input). No result was written. "
            "Use --cpu-kernels optimized (and no --compare ref or --labels, which need the reference kernels), "
            "or give inputs whose scores are not flat") from None


class _KilledBySignal(Exception):
    def __init__(self, number):
        super().__init__(number)
        self.number = number
        try:
            self.name = signal.Signals(number).name
        except ValueError:
            self.name = f"signal {number}"


def run_in_child(function, *args):
    """``function(*args)`` in a forked child; returns its int result (the exit code).

    Raises ``_KilledBySignal`` if the child dies by a signal. Exceptions inside
    the child must be handled by ``function`` (it returns an exit code).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:        # the child: never returns into the caller's stack
        code = 70
        try:
            os.close(out_read)
            os.close(err_read)
            os.dup2(out_write, 1)
            os.dup2(err_write, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
            sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
            code = function(*args)
            code = code if isinstance(code, int) else 0
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(out_write)
    os.close(err_write)
    _relay({out_read: sys.stdout, err_read: sys.stderr})
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except KeyboardInterrupt:       # the child got the same SIGINT; wait for it to wind down
            continue
    if os.WIFSIGNALED(status):
        raise _KilledBySignal(os.WTERMSIG(status))
    return os.WEXITSTATUS(status)


def _relay(pipes):
    selector = selectors.DefaultSelector()
    for descriptor, stream in pipes.items():
        selector.register(descriptor, selectors.EVENT_READ, stream)
    open_pipes = len(pipes)
    while open_pipes:
        try:
            events = selector.select()
        except KeyboardInterrupt:
            continue
        for key, _ in events:
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                os.close(key.fd)
                open_pipes -= 1
                continue
            key.data.write(chunk.decode(errors="replace"))
            key.data.flush()
    selector.close()
