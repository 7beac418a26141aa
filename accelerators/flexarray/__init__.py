"""The flexarray accelerator plug-in: MAERI/SIGMA-style flexible dataflow with a mapping compiler."""

import numpy as np

from ...driver.kinds import digest, kinds as registered_kinds
from ...errors import UnsupportedLayer
from ..base import Accelerator, Param, ParamSpace
from .gateware import DISTRIBUTION_NETWORKS, FlexArrayCore, REDUCTION_NETWORKS
from . import compiler, cost, driver, search

__all__ = ["FlexArrayAccelerator", "FlexArrayCore"]

#: weights at least this sparse make the signature include their non-zero pattern (sparse mappings depend on it)
SPARSE_SIGNATURE = 0.25


class FlexArrayAccelerator(Accelerator):
    """N int8 multiplier switches, a crossbar distribution network (or multicast trees), a forwarding adder
    network (or the segmented-sum reference, or an augmented reduction tree), an accumulation buffer and TFLite
    requantization; mappings from a compiler."""

    name = "flexarray"
    core_class = FlexArrayCore
    description = ("int8 MAERI/SIGMA-style flexible array: virtual neurons of any size, dense and bitmap-sparse "
                   "mappings chosen per layer by a cycle model")
    space = ParamSpace(
        params=(
            Param("multipliers", 16, 4, 128, "multiplier switches (N)", power_of_two=True),
            Param("dn_bw", 8, 4, 128, "distribution bandwidth: int8 values per cycle (the stream is 8*dn_bw bits)",
                  power_of_two=True),
            Param("rn_bw", 16, 1, 128, "reduction output lanes: VN sums collected per step"),
            Param("rn", 0, 0, len(REDUCTION_NETWORKS) - 1,
                  "reduction network: " + ", ".join(f"{i} {name}" for i, name in enumerate(REDUCTION_NETWORKS))
                  + " (by number or name)", names=REDUCTION_NETWORKS),
            Param("acc_depth", 256, 2, 1 << 16, "accumulation buffer words (steps per tile)", power_of_two=True),
            Param("dn", 0, 0, len(DISTRIBUTION_NETWORKS) - 1,
                  "distribution network: 0 xbar (any value to any multiplier), 1 tree (dn_bw multicast trees of "
                  "multipliers/dn_bw multipliers, a value a tree per cycle; by number or name)",
                  names=DISTRIBUTION_NETWORKS),
            Param("reach", 8, 0, 16, "lane reach: multipliers per lane region (a lane collects only over its "
                  "region and the region's ancestors); 0: every lane reaches every node. rn=fan, dn=xbar only",
                  power_of_two=True),
        ),
        constraints=((lambda p: p["rn_bw"] <= p["multipliers"], "rn_bw ({rn_bw}) must not exceed multipliers "
                      "({multipliers})"),
                     (lambda p: p["dn"] == 0 or p["dn_bw"] <= p["multipliers"], "dn=tree needs dn_bw ({dn_bw}) "
                      "<= multipliers ({multipliers}): one multicast tree per value of a beat"),
                     (lambda p: p.get("reach", 0) <= p["multipliers"], "reach ({reach}) must not exceed multipliers "
                      "({multipliers})"),
                     (lambda p: not p.get("reach", 0) or (p["rn"], p["dn"]) == (0, 0), "a lane reach ({reach}) "
                      "works with rn=fan and dn=xbar only: add reach=0 to the parameters")),
    )
    small_params = {"multipliers": 8, "dn_bw": 4, "rn_bw": 4, "acc_depth": 16, "reach": 4}
    kinds = ("gemm", "conv2d", "fc") + tuple(kind for kind in ("depthwise_conv2d", "batch_matmul")
                                             if kind in registered_kinds())

    def core(self):
        p = self.params
        return FlexArrayCore(multipliers=p["multipliers"], dn_bw=p["dn_bw"], rn_bw=p["rn_bw"],
                             rn=REDUCTION_NETWORKS[p["rn"]], dn=DISTRIBUTION_NETWORKS[p["dn"]],
                             acc_depth=p["acc_depth"], reach=p.get("reach", 0))

    @property
    def design(self):
        return compiler.Design.from_params(self.params)

    @property
    def pes(self):
        return self.params["multipliers"]

    def signature(self, layer, *input_shapes):
        """The kind's signature, plus the weights' non-zero pattern when they are sparse enough to map sparsely."""
        signature = super().signature(layer, *input_shapes)
        if layer.op == "batch_matmul":
            return signature          # its stationary operand is an activation: mapped densely, by shape
        weights = compiler.structure_of(layer, input_shapes[0]).weights
        if np.mean(weights == 0) >= SPARSE_SIGNATURE:
            signature += "#nz" + digest(np.packbits(weights != 0))
        return signature

    def choice_signature(self, layer, *input_shapes):
        """What the mapping search's choice depends on: the layer's structure as the compiler sees it (kind,
        operand index pattern, output geometry, kernel, stride, dilation), and the weights' non-zero pattern
        when they are sparse enough to map sparsely; not its quantization. Layers of different models with
        the same structure share it, so a mapping found for one (by ``plan``) serves the other."""
        s = compiler.structure_of(layer, *(tuple(shape) for shape in input_shapes[:2]))
        signature = (f"{s.kind}:m{s.m}k{s.k}n{s.n}:out{list(s.out_shape)}:geo{list(s.geometry or ())}"
                     f":ker{list(s.kernel or ())}x{s.depth_multiplier}:s{list(s.stride or ())}:d{list(s.dilation or ())}"
                     f":ix{digest(s.index)}")
        if np.mean(s.weights == 0) >= SPARSE_SIGNATURE:
            signature += "#nz" + digest(np.packbits(s.weights != 0))
        return signature

    def make_plan(self, layer, *input_shapes, mapping=None):
        """A plan with ``mapping`` (checked), or with the mapping the cycle model finds best (``search``).

        A batch_matmul (two input shapes) is one GEMM per batch element, all of one shape, run as one job
        each with the same mapping: the plan's program is the first element's (its rhs unknown yet; the
        cycle model does not depend on it), the one run for each element is compiled with its rhs.
        """
        expected = 2 if layer.op == "batch_matmul" else 1
        if len(input_shapes) != expected:
            raise UnsupportedLayer(f"a {layer.op} layer takes {expected} input shape(s), not {len(input_shapes)}")
        structure = compiler.structure_of(layer, *input_shapes)
        if mapping is None:
            mapping = search.best_mapping(self.design, structure)
        program = compiler.compile_program(self.design, structure, mapping)
        count = driver.batch_count(layer, input_shapes)
        output_shape = layer.output_shape(*input_shapes) if layer.op == "batch_matmul" else structure.out_shape
        plan = self.new_plan(layer, input_shapes, driver.schedule_of(mapping, program, count),
                             output_shape=output_shape)
        driver.remember_program(self, plan, program)
        return plan

    def plan_with(self, layer, input_shape, mapping):
        """A plan with a given ``compiler.Mapping`` (bypassing the search and the plan cache); a batch_matmul's
        ``input_shape`` is the pair (lhs shape, rhs shape)."""
        if layer.op == "batch_matmul":
            return self.make_plan(layer, *(tuple(int(d) for d in shape) for shape in input_shape), mapping=mapping)
        return self.make_plan(layer, tuple(input_shape), mapping=mapping)

    def plan_choice(self, layer, input_shapes, choice):
        """A plan with a stored mapping (``Mapping.as_dict`` form, e.g. from a search's record): the per-layer
        choice without the mapping search. :class:`UnsupportedLayer` when the mapping does not fit the layer or
        design; :class:`ParameterError` when ``choice`` is not a mapping."""
        from ...errors import ParameterError
        try:
            mapping = compiler.Mapping.from_dict(choice)
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"not a flexarray mapping: {choice!r} ({error})") from None
        shapes = tuple(tuple(int(d) for d in shape) for shape in input_shapes)
        return self.make_plan(layer, *shapes[:2 if layer.op == "batch_matmul" else 1], mapping=mapping)

    def run(self, plan, device, *inputs, cycle_budget=None):
        return driver.run_plan(self, plan, device, *inputs, cycle_budget=cycle_budget)

    def golden(self, plan, *inputs):
        """What the array computes: the layer lowered to its (possibly block-diagonal) GEMM, TFLite-exact; a
        batch_matmul's GEMMs with the rhs zero point's terms in the weights."""
        if plan.kind == "batch_matmul":
            return compiler.batch_matmul_golden(plan.layer, *inputs).reshape(plan.output_shape)
        (x,) = inputs
        gemm, _ = compiler.operands_of(plan.layer, x)
        return gemm.reference().reshape(plan.output_shape)

    def estimate(self, plan, dma):
        return driver.estimate(self, plan, dma)

    def random_layer(self, kind, rng, **shape):
        """The kind's random layer; a third of them with 50-90% of the weights zeroed (sparse mappings)."""
        layer, inputs = super().random_layer(kind, rng, **shape)
        if compiler.weights_field(layer) is not None and rng.random() < 1 / 3:
            weights = compiler.weights_field(layer)
            keep = rng.random(getattr(layer, weights).shape) >= rng.choice([0.5, 0.7, 0.9])
            setattr(layer, weights, (getattr(layer, weights) * keep).astype(np.int8))
        return layer, inputs
