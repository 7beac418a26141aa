"""The block-floating-point (BFP) accelerator plug-in: llama.cpp-quantized MatMuls (Q8_0, Q4_0, Q2_K, Q3_K).

Where the float combine happens: on the host. The core returns the exact
integer block sums (``isum``, ``msum``; the sub-block scales and mins are
applied on chip), and the host multiplies them by the float super-scales and
adds the blocks in one fixed order (``driver/ggml/dot.py: combine``). Why:

* the integer sums are the only part of ggml's dot product that is defined
  exactly: ggml's own float order differs between its generic, AVX2 and NEON
  kernels, so an on-chip float combine could match one of them at best;
* an on-chip combine needs an fp16-to-fp32 converter, an fp32 multiplier and an
  fp32 accumulator with IEEE rounding for a few flops per block, against
  ``block`` integer MACs per block on the array; on the host it is one
  vectorised numpy expression per MatMul;
* the sums cost 8 bytes per (block, token) on the output stream, against 18 to
  110 bytes per block on the input stream: with one token (generation) the output
  never limits the weight stream, and with many (prompt) the array's
  ``tokens * block / lanes`` cycles per block bind first.
"""

from pathlib import Path

from ...driver.ggml import formats
from ..base import Accelerator, Param, ParamSpace
from .gateware import BfpCore, HW_FORMATS
from . import cost, driver

__all__ = ["BfpAccelerator", "BfpCore", "HW_FORMATS"]


class BfpAccelerator(Accelerator):
    """``lanes`` int8 MACs per cycle over weight blocks streamed once in their packed form."""

    name = "bfp"
    core_class = BfpCore
    description = ("llama.cpp block-quantized MatMuls (Q8_0, Q4_0 with Q8_0 activations; Q2_K, Q3_K with Q8_K), "
                   "format switched per job, integer block sums on chip")
    space = ParamSpace(
        params=(
            Param("lanes", 32, 16, 32, "int8 MACs per cycle (elements of a block per step)", power_of_two=True),
            # the block memory writes a beat as one byte per column: beats of 16 bytes would put two bytes
            # of a Q3_K block pair in one column (see gateware._Layout)
            Param("data_width", 64, 32, 64, "AXI4-Stream data width in bits", power_of_two=True),
            Param("act_depth", 1024, 2, 1 << 20, "activation memory words of `lanes` bytes", power_of_two=True),
        ),
        constraints=((lambda p: p["data_width"] <= 8 * p["lanes"],
                      "data_width ({data_width}) must not exceed the activation word of lanes * 8 bits"),),
    )
    kinds = ("block_matmul",)
    small_params = {"lanes": 16, "data_width": 64, "act_depth": 256}
    #: the gateware's decoders are generated from these declarations (part of the build cache key)
    design_sources = (str(Path(formats.__file__)),)

    def core(self):
        return BfpCore(**self.params)

    @property
    def pes(self):
        return self.params["lanes"]

    def make_plan(self, layer, input_shape):
        """Jobs over token chunks of a BlockMatMul on (tokens, K) activations, or :class:`UnsupportedLayer`."""
        schedule = driver.make_schedule(self.params, self.name, layer, tuple(input_shape))
        return self.new_plan(layer, (tuple(input_shape),), schedule)

    def run(self, plan, device, x, cycle_budget=None):
        out, stats, _ = driver.run(self.params, plan, device, x, cycle_budget)
        return out, stats

    def run_sums(self, plan, device, x, cycle_budget=None):
        """Like :meth:`run`, plus the raw integer block sums the device returned (for bit-exact checks)."""
        return driver.run(self.params, plan, device, x, cycle_budget)

    def estimate(self, plan, dma):
        return driver.estimate(self.params, plan, dma)
