import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from accelkit.accelerators.gemm import GemmAccelerator   # noqa: E402
from accelkit.driver.device import DmaTiming              # noqa: E402
from accelkit.sw.devices import open_device               # noqa: E402

# Few designs, many shapes: each design is built once per session (and cached on disk
# by content hash across sessions).


@pytest.fixture(scope="session")
def device_pool():
    opened = {}

    def get(params, backend="verilator", dma=DmaTiming(8, 0)):
        key = (tuple(sorted(params.items())), backend, dma)
        if key not in opened:
            accelerator = GemmAccelerator(**params)
            opened[key] = (accelerator, open_device(accelerator, backend, dma))
        return opened[key]

    yield get
    for _, device in opened.values():
        device.close()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "iverilog" in item.keywords and shutil.which("iverilog") is None:
            item.add_marker(pytest.mark.skip(reason="iverilog is not installed (apt-get install iverilog)"))
