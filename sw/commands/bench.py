"""`accelkit bench NAME`: benchmarks that print measured figures (never asserted by tests)."""

from ..benchmarks.dse import dse_bench
from ..benchmarks.ecp5_board import ulx3s_bench
from ..benchmarks.flexarray import flexarray_bench
from ..benchmarks.fuzz import fuzz_bench
from ..benchmarks.llm import llm_bench
from ..benchmarks.mm2im_tconv import tconv_bench
from ..benchmarks.mutation import mutate_bench
from ..benchmarks.potacc_shift_pe import potacc_bench
from ..benchmarks.scalesim import scalesim_bench
from ..benchmarks.simulation import fidelity_bench, model_bench, sim_speed, utilization_bench
from ..benchmarks.timing import timing_bench
from ..reports.output import write_json
from . import arguments

__all__ = ["add_arguments", "run", "BENCHMARKS"]


def add_arguments(parser):
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--size", type=arguments.size("GEMM size"), default=64, help="sim-speed: M=N=K of the shared GEMM (default 64)")
    parser.add_argument("--repeat", type=arguments.positive_int("repeat count", 1000), default=5,
                        help="sim-speed: timed runs of the GEMM on the native and cocotb routes, median taken "
                        "(default 5; Amaranth runs once)")
    parser.add_argument("--routes", default=None, metavar="NAMES",
                        help="sim-speed: verilator plus any of cocotb, amaranth (default: all three)")
    parser.add_argument("--baseline", metavar="COMMIT", default=None,
                        help="sim-speed: also time the same GEMM on this commit's native route (its own code and "
                        "design, built from `git archive`), side by side; e.g. 8ab912f, before issue 12")
    parser.add_argument("--seed", type=arguments.seed, default=0)
    parser.add_argument("--models", default=None,
                        help="utilization, scalesim (default mobilenet_v2), potacc (default digits_cnn): "
                        "comma-separated zoo models")
    parser.add_argument("--samples", type=arguments.positive_int("sample count", 1 << 30), default=None, help="potacc: inputs per model (default: all)")
    parser.add_argument("--count", type=arguments.positive_int("configuration count", 1 << 20), default=260, help="tconv: configurations in the sweep (default 260)")
    parser.add_argument("--rtl", type=arguments.non_negative_int("RTL run count", 1 << 20), default=0, metavar="N",
                        help="tconv: also run N of them on Verilator; flexarray: any N > 0 also runs the irregular "
                        "shapes on the small designs' RTL; llm: also generate N tokens on Verilator")
    parser.add_argument("--mutants", type=arguments.non_negative_int("mutant count", 1 << 20), default=2000,
                        help="fuzz: mutated model files (default 2000)")
    parser.add_argument("--cli-sets", type=arguments.non_negative_int("command-line count", 1 << 20), default=500,
                        help="fuzz: random command lines (default 500)")
    parser.add_argument("--workers", type=arguments.positive_int("worker count", 256), default=2,
                        help="fuzz: cases run at once; tconv, fidelity: workers of the runner (default 2)")
    arguments.add_runner_arguments(parser, "tconv configurations and fidelity accelerators", workers=False)
    parser.add_argument("--no-tvm", action="store_true", help="fuzz: mutated models on the LiteRT front end only")
    parser.add_argument("--keep", metavar="DIR", help="fuzz: keep the mutated models in DIR")
    parser.add_argument("--tokens", type=arguments.positive_int("token count", 1 << 16), default=8,
                        help="llm: tokens generated on the model backend (default 8)")
    parser.add_argument("--prompt", default="The capital of France is", help="llm: the prompt")
    parser.add_argument("--only", metavar="NAMES", default=None,
                        help="timing: comma-separated accelerators (default: every registered one, at its defaults "
                        "unless --params says otherwise); dse: parts among speed, ray, exhaustive, reuse (default all)")
    parser.add_argument("--clock-mhz", type=arguments.clock_mhz, default=None,
                        help="llm: clock for tokens/s (default: bfp's ECP5-85F place-and-route Fmax when cached)")


BENCHMARKS = {"sim-speed": sim_speed, "model": model_bench, "utilization": utilization_bench,
              "fidelity": fidelity_bench, "scalesim": scalesim_bench, "potacc": potacc_bench,
              "tconv": tconv_bench, "mutate": mutate_bench, "fuzz": fuzz_bench, "flexarray": flexarray_bench,
              "llm": llm_bench, "ulx3s": ulx3s_bench, "timing": timing_bench, "dse": dse_bench}



def run(args):
    record = BENCHMARKS[args.name](args)
    if args.json:
        write_json(args.json, record)
    return 0
