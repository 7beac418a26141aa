import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from accelkit.accelerators.gemm import GemmAccelerator   # noqa: E402
from accelkit.driver.device import DmaTiming              # noqa: E402
from accelkit.sw.execution.devices import open_device               # noqa: E402

# Few designs, many shapes: each design is built once per session (and cached on disk
# by content hash across sessions).


@pytest.fixture(scope="session")
def device_pool():
    opened = {}

    def get(params, backend="verilator", dma=DmaTiming(8, 0), accelerator_class=GemmAccelerator):
        key = (accelerator_class.name, tuple(sorted(params.items())), backend, dma)
        if key not in opened:
            accelerator = accelerator_class(**params)
            opened[key] = (accelerator, open_device(accelerator, backend, dma))
        return opened[key]

    yield get
    for _, device in opened.values():
        device.close()


@pytest.fixture(scope="session")
def mobilenet_rtl_run(tmp_path_factory):
    """The suite's one whole-MobileNetV2 RTL run (8x8 GEMM, Verilator), compared with BUILTIN_REF.

    Returns (exit code, JSON record); tests of outputs, bit-exactness and cost-model
    fidelity share it.
    """
    import json
    from accelkit.sw.commands import main as cli
    path = tmp_path_factory.mktemp("mobilenet") / "mnv2.json"
    code = cli.main(["run", "mobilenet_v2", "--compare", "ref", "--json", str(path)])
    return code, json.loads(path.read_text())


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "iverilog" in item.keywords and shutil.which("iverilog") is None:
            item.add_marker(pytest.mark.skip(reason="iverilog is not installed (apt-get install iverilog)"))
