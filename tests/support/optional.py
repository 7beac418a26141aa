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
