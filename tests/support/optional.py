"""Optional extras in tests: skip with the reason, unless the run says the extra must be there.

`make test` installs the `tvm` extra and sets ``ACCELKIT_REQUIRE=tvm``: then a missing or broken TVM
fails the TVM tests instead of skipping them wholesale.
"""

import os

import pytest

from accelkit.errors import ToolchainError


def required(extra):
    return extra in {item.strip() for item in os.environ.get("ACCELKIT_REQUIRE", "").split(",")}


def need_tvm():
    """Skip the calling test module without TVM (fail instead when the run requires it)."""
    from accelkit.sw.frontends.tvm import require_tvm
    try:
        require_tvm()
    except ToolchainError as error:
        if required("tvm"):
            raise
        pytest.skip(str(error), allow_module_level=True)


def need_llama_cpp():
    """Skip the calling test module without llama-cpp-python, saying so (fail instead under
    ``ACCELKIT_REQUIRE=llama``). ``make test`` and CI never build it (about 7 minutes from source)."""
    from accelkit.sw.llm.reference import llama_cpp_module
    if llama_cpp_module() is None:
        message = ("llama-cpp-python is not installed: the llama.cpp comparison needs the optional extra "
                   "`llama` (pip install .[llama], built from source in ~7 minutes)")
        if required("llama"):
            raise ToolchainError(message)
        pytest.skip(message, allow_module_level=True)
