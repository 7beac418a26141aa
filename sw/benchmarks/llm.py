"""`accelkit bench llm`: SmolLM2-135M (requantized Q4_0, Q8_0, and Q4_0 with K-quant ffn_down) on bfp.

Prints measured figures: generation cycles per token against the weight-streaming
bound, tokens/s at the clock, the model backend's tokens/s (wall and CPU time),
and, with ``--rtl N``, N generated tokens on the Verilator RTL (wall and CPU time
per token, and whether its tokens and cycles equal the model backend's). The
design's Yosys resource estimate (xc7, against the Zynq-7020) comes first; its
Fmax is printed when a timing run of this design is in the cache (the benchmark
runs no place and route).

llama.cpp is the reference when llama-cpp-python is importable (an optional
extra that builds from source in about 7 minutes, never needed by the tests):
then each variant also reports llama.cpp's greedy tokens against the model
backend's, the top-1 agreement and mean KL divergence of the two logit sets over
the same token ids, and llama.cpp's CPU tokens/s. Without it the record says so.
"""

import argparse
import time

import numpy as np
from rich.markup import escape

from ...accelerators.base import get_accelerator, parse_params
from ..commands.llm import run_generation
from ..commands.resources import print_figures
from ..hardware.figures import design_figures
from ..llm.forward import Llama
from ..llm.gguf_model import load_llama
from ..llm.smollm2 import VARIANTS, smollm2_variant
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["llm_bench", "llama_cpp_comparison"]


def _args(args, model, backend, tokens):
    return argparse.Namespace(model=str(model), prompt=args.prompt, max_tokens=tokens, temperature=0.0, top_k=0,
                              top_p=1.0, seed=0, quantizer="ref", clock_mhz=args.clock_mhz, accel="bfp",
                              params=args.params, backend=backend, dma_bytes=args.dma_bytes,
                              dma_latency=args.dma_latency, json=None)


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp


LLAMA_CPP_MISSING = ("llama-cpp-python is not installed (an optional extra, `pip install .[llama]`; it builds "
                     "from source in ~7 min): no llama.cpp comparison")


def _log_softmax(logits):
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def llama_cpp_comparison(model_path, prompt_ids, generated_ids):
    """llama.cpp on the same GGUF: its greedy continuation of ``prompt_ids``, CPU tokens/s, and its logits over
    ``prompt_ids + generated_ids`` against the numpy forward pass (ggml's semantics, as every accelkit backend
    computes it): top-1 agreement and mean KL(llama.cpp || accelkit). None when llama-cpp-python is absent."""
    llama_cpp = _llama_cpp()
    if llama_cpp is None:
        return None
    ids = list(prompt_ids) + list(generated_ids)
    llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=max(64, len(ids) + 8), logits_all=True, verbose=False)
    llm.eval(ids)
    theirs = np.array(llm.scores[:len(ids)], dtype=np.float32)
    ours = Llama(load_llama(model_path), max_context=len(ids)).forward(ids, all_logits=True)
    p_theirs, p_ours = _log_softmax(theirs), _log_softmax(ours)
    kl = (np.exp(p_theirs) * (p_theirs - p_ours)).sum(axis=-1)
    # greedy generation, one token per eval, timed
    llm.reset()
    llm.eval(list(prompt_ids))
    greedy, seconds, cpu = [], 0.0, 0.0
    for _ in range(len(generated_ids)):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        greedy.append(token)
        started, cpu_started = time.perf_counter(), time.process_time()
        llm.eval([token])
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    return {"llama_cpp_version": getattr(llama_cpp, "__version__", "?"), "threads": getattr(llm, "n_threads", None),
            "tokens_per_second": len(greedy) / seconds if seconds else None,
            # CPU seconds of this process (llama.cpp's threads included): on a shared machine the wall figure
            # also counts the time other processes held the cores
            "tokens_per_cpu_second": len(greedy) / cpu if cpu else None,
            "greedy_ids": greedy, "same_greedy_tokens": greedy == list(generated_ids),
            "top1_agreement": float((theirs.argmax(axis=-1) == ours.argmax(axis=-1)).mean()),
            "mean_kl": float(kl.mean()), "max_abs_logit_difference": float(np.abs(theirs - ours).max()),
            "positions": len(ids)}


def _resources(accelerator):
    """The design's Yosys estimate on the Zynq-7020 (cached) and, when a timing run is cached, its measured Fmax."""
    figures = design_figures(accelerator, "xc7z020", progress=progress_printer())
    print_figures(f"{accelerator!r}", figures)
    return figures


def _rate(seconds):
    return f"{1 / seconds:.2f}" if seconds else "-"


def llm_bench(args):
    accelerator = get_accelerator("bfp", parse_params(args.params))
    hardware = _resources(accelerator)
    rows, results = [], []
    have_llama_cpp = _llama_cpp() is not None
    for name in VARIANTS:
        model = smollm2_variant(name)
        text, report, _ = run_generation(_args(args, model, "model", args.tokens), stream=False)
        entry = {"variant": name, "model": str(model), "text": text, "model_backend": report}
        walls = report["wall_per_generated_token_steady_s"] or report["wall_per_generated_token_s"]
        rtl = None
        if args.rtl:
            _, rtl, _ = run_generation(_args(args, model, "verilator", args.rtl), stream=False)
            modelled = [r["cycles"] for r in report["records"][:len(rtl["records"])]]
            entry["rtl"] = {"report": rtl,
                            "same_tokens_as_model": rtl["generated_ids"] == report["generated_ids"][:args.rtl],
                            "same_cycles_as_model": [r["cycles"] for r in rtl["records"]] == modelled}
        reference = llama_cpp_comparison(model, report["prompt_ids"], report["generated_ids"])
        entry["llama_cpp"] = reference if reference is not None else {"note": LLAMA_CPP_MISSING}
        results.append(entry)
        rows.append([name, f"{report['generation_cycles_per_token']:,.0f}", f"{report['weight_stream_bound_cycles']:,.0f}",
                     f"{report['cycles_over_bound']:.3f}",
                     f"{report['tokens_per_second_at_clock']:.2f}" if report["tokens_per_second_at_clock"] else "-",
                     _rate(walls), _rate(report["cpu_per_generated_token_steady_s"]),
                     f"{rtl['wall_per_generated_token_s']:.2f}" if rtl and rtl["wall_per_generated_token_s"] else "-",
                     f"{rtl['cpu_per_generated_token_s']:.2f}" if rtl and rtl["cpu_per_generated_token_s"] else "-",
                     ("yes" if entry["rtl"]["same_tokens_as_model"] and entry["rtl"]["same_cycles_as_model"] else "NO")
                     if rtl else "-",
                     f"{reference['tokens_per_second']:.1f} / {reference['tokens_per_cpu_second']:.1f}"
                     if reference and reference["tokens_per_cpu_second"] else "n/a",
                     f"{reference['top1_agreement']:.2f} / {reference['mean_kl']:.1e}" if reference else "n/a"])
    console.print(table(f"SmolLM2-135M on bfp ({args.params or 'default parameters'}), "
                        f"{args.dma_bytes} B/cycle, clock "
                        + (f"{report['clock_mhz']:g} MHz ({report['clock_source']})" if report["clock_mhz"]
                           else "unmeasured"),
                        ["variant", "cycles/token", "stream bound", "ratio", "tokens/s at clock",
                         "model backend tokens/s (wall)", "(CPU)", "RTL s/token (wall)", "(CPU)",
                         "RTL = model", "llama.cpp tokens/s (wall / CPU)", "llama.cpp top-1 / KL"],
                        rows))
    if not have_llama_cpp:
        console.print(f"llama.cpp: {escape(LLAMA_CPP_MISSING)}")
    return provenance("bench llm", accelerator=accelerator, prompt=args.prompt, tokens=args.tokens,
                      rtl_tokens=args.rtl, hardware=hardware, llama_cpp_available=have_llama_cpp, results=results)
