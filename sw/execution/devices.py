"""Opening a device for an accelerator by backend name: the one place that knows every simulator."""

import hashlib
from pathlib import Path

import amaranth

from ...driver.device import DmaTiming
from ...errors import ParameterError

__all__ = ["BACKENDS", "open_device", "design_key"]

BACKENDS = ("verilator", "amaranth", "cocotb")

_HW = Path(__file__).resolve().parents[2] / "hw"   # the package root is three levels up from here
_ACCELERATORS = _HW.parent / "accelerators"


def design_key(accelerator) -> str:
    """Hash of everything the accelerator's Verilog depends on: sources, parameters, Amaranth version."""
    digest = hashlib.sha256()
    package = Path(__import__(type(accelerator).__module__, fromlist=["_"]).__file__).resolve().parent
    # Plug-ins may build on each other (potacc is the GEMM core with shift PEs): hash them all.
    for folder in dict.fromkeys((_HW, _ACCELERATORS, package)):
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.read_bytes())
    # Gateware generated from declarations outside hw/ (bfp's decoders come from driver/ggml's format specs).
    for path in accelerator.design_sources:
        digest.update(Path(path).read_bytes())
    digest.update(repr((type(accelerator).__qualname__, sorted(accelerator.params.items()),
                        amaranth.__version__)).encode())
    # a fault built into the gateware is another design (host-side faults share the fault-free build)
    built_in = sorted(set(accelerator.faults) & set(accelerator.gateware_faults))
    if built_in:
        digest.update(repr(("faults", built_in)).encode())
    return digest.hexdigest()[:32]


def open_device(accelerator, backend="verilator", dma: DmaTiming | None = None, trace=None, progress=None):
    """A device running ``accelerator``'s RTL on ``backend`` (see ``BACKENDS``)."""
    if backend == "verilator":
        from ...sim.verilator import VerilatorDevice
        return VerilatorDevice.from_shell(accelerator.shell(), accelerator.top_name, dma, trace,
                                          design_key(accelerator), progress)
    if backend == "amaranth":
        from ...sim.amaranth_sim import AmaranthDevice
        if trace is not None and not str(trace).endswith(".vcd"):
            raise ParameterError(f"the amaranth backend writes VCD waveforms; name the file *.vcd, not {trace}")
        return AmaranthDevice(accelerator.shell(), dma, trace)
    if backend == "cocotb":
        from ...sim.cocotb_device import CocotbDevice
        return CocotbDevice.from_shell(accelerator.shell(), accelerator.top_name, dma, trace,
                                       design_key(accelerator), progress)
    raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
