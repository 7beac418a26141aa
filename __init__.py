"""accelkit: hardware/software co-design of DNN accelerators, centred on simulation.

Subpackages, in dependency order (each may import only those before it):
``hw`` (gateware blocks and the accelerator shell), ``driver`` (device interface,
register maps, tiling, quantization helpers), ``sim`` (simulator devices),
``accelerators`` (plug-in designs), ``sw`` (framework integration, reports, CLI).
"""

__version__ = "0.1.0"
