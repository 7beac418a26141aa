"""TVM (Relax) BYOC offload of int8 layers to accelkit accelerators.

The second front end next to ``sw/tflite``: TVM's Relax TFLite importer turns a
.tflite model into a Relax module, :func:`partition.partition_for_accelkit`
groups the int8 chains the importer emits for each layer kind into composite
functions (declined, or accepted with a plan, by the same ``Accelerator.plan``
the LiteRT delegate uses), and :class:`runner.TvmModel` compiles the rest with
LLVM and runs it on the Relax VM, calling back into Python for every offloaded
layer.

TVM is an optional dependency (``pip install 'accelkit[tvm]'``), so nothing
here imports it at package import time; :func:`require_tvm` says what is
missing.
"""

from ....errors import ToolchainError

__all__ = ["TVM_VERSION", "tvm_available", "require_tvm"]

#: The TVM release this front end is written against: the Relax Python API still
#: changes between releases (the importer's name and output, the FFI package).
TVM_VERSION = "0.27.0.post1"


def tvm_available() -> bool:
    try:
        require_tvm()
    except ToolchainError:
        return False
    return True


def require_tvm():
    """Import tvm (and check its version), or raise ToolchainError saying how to install it."""
    try:
        import tvm
        import tvm_ffi  # noqa: F401  (the FFI package TVM 0.27 registers functions with)
        import tflite   # noqa: F401  (the importer reads the flatbuffer through it)
    except ImportError as error:
        raise ToolchainError(f"the TVM front end needs apache-tvm=={TVM_VERSION} and tflite "
                             f"(pip install 'accelkit[tvm]'): {error}") from None
    if tvm.__version__ != TVM_VERSION:
        raise ToolchainError(f"the TVM front end is written against apache-tvm=={TVM_VERSION}, "
                             f"but {tvm.__version__} is installed")
    return tvm
