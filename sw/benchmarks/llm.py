"""`accelkit bench llm`: SmolLM2-135M (requantized Q4_0, Q8_0, and Q4_0 with K-quant ffn_down) on bfp.

Prints measured figures: generation cycles per token against the weight-streaming
bound, tokens/s at the clock, the model backend's tokens/s (wall and CPU time),
and, with ``--rtl N``, N generated tokens on the Verilator RTL (wall and CPU time
per token, and whether its tokens and cycles equal the model backend's). The
design's Yosys resource estimate (xc7, against the Zynq-7020) comes first; its
Fmax is printed when a timing run of this design is in the cache (the benchmark
runs no place and route).

llama.cpp is the reference when llama-cpp-python 0.3.36 is importable (an optional
extra that builds from source in about 7 minutes, never needed by `make test`):
then each variant also reports every weight MatMul node of the prompt read inside
llama.cpp through its eval callback against accelkit's host MatMul on the same input
(largest relative error), the top-1 agreement and mean KL divergence of accelkit's
logits against llama.cpp's over the prompt and generated ids, with bounds calibrated
on llama.cpp's own spread (batched against token by token), llama.cpp's greedy
tokens, and its tokens/s (wall and CPU) with 1 and 2 threads. Without it the
record says so.
"""

import argparse
import time

import numpy as np
from rich.markup import escape

from ...accelerators.base import get_accelerator, parse_params
from ..commands.llm import run_generation
from ..commands.resources import print_figures
from ..hardware.figures import design_figures
from ..llm.forward import HostMatMul, Llama
from ..llm.gguf_model import load_llama
from ..llm.reference import (LLAMA_CPP_VERSION, LlamaCpp, agreement, calibrated_bounds, combined_spread,
                             compare_matmuls, llama_cpp_module, logits as reference_logits, ulp_nudged,
                             within_bounds)
from ..llm.smollm2 import VARIANTS, smollm2_variant
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["llm_bench", "llama_cpp_comparison"]


def _args(args, model, backend, tokens):
    return argparse.Namespace(model=str(model), prompt=args.prompt, max_tokens=tokens, temperature=0.0, top_k=0,
                              top_p=1.0, seed=0, quantizer="ref", clock_mhz=args.clock_mhz, accel="bfp",
                              params=args.params, backend=backend, dma_bytes=args.dma_bytes,
                              dma_latency=args.dma_latency, json=None)


def _llama_cpp():
    return llama_cpp_module()


LLAMA_CPP_MISSING = ("llama-cpp-python is not installed (an optional extra, `pip install .[llama]`; it builds "
                     "from source in ~7 min): no llama.cpp comparison")


def _greedy_timed(model_path, prompt_ids, count, threads):
    """llama.cpp's greedy continuation of ``prompt_ids`` (one token per decode) with its wall and CPU seconds
    per generated token (CPU time of this process, llama.cpp's threads included)."""
    with LlamaCpp(model_path, n_ctx=len(prompt_ids) + count + 8, threads=threads) as run:
        logits = run.decode(prompt_ids)
        greedy, wall, cpu = [], 0.0, 0.0
        for _ in range(count):
            greedy.append(int(np.argmax(logits[-1])))
            started, cpu_started = time.perf_counter(), time.process_time()
            logits = run.decode([greedy[-1]])
            wall += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
    return greedy, {"threads": threads, "tokens_per_second": count / wall if wall else None,
                    "tokens_per_cpu_second": count / cpu if cpu else None}


def llama_cpp_comparison(model_path, prompt_ids, generated_ids, *, threads=(1, 2)):
    """llama.cpp (llama-cpp-python 0.3.36, CPU) on the same GGUF; None when llama-cpp-python is absent.

    * ``matmuls``: every weight MatMul node of the prompt's graph, read through llama.cpp's eval callback and
      recomputed by accelkit's ``HostMatMul`` (x86's activation quantizer, as llama.cpp on this machine) from
      the node's own input: the largest relative error and where.
    * ``spread``: llama.cpp against itself (the prompt and generated ids as one batch, then token by token):
      top-1 agreement and KL; the bounds below are calibrated on it (``reference.calibrated_bounds``).
    * ``host_avx2`` / ``host_ref``: accelkit's logits over the same ids (the numpy forward pass with x86's or
      ggml's reference activation quantizer; ``ref`` is what the bfp backends compute, bit for bit) against
      llama.cpp's batched ones, and whether they are within the bounds.
    * greedy ids and tokens/s (wall and CPU) of one-token decodes for each thread count.
    """
    if llama_cpp_module() is None:
        return None
    model = load_llama(model_path)
    ids = list(prompt_ids) + list(generated_ids)
    started, cpu_started = time.perf_counter(), time.process_time()
    rows, attention = compare_matmuls(model_path, list(prompt_ids), HostMatMul(quantizer="avx2"), model)
    worst = max(rows, key=lambda r: r["relative_error"])
    matmuls = {"nodes": len(rows), "attention_nodes_not_compared": attention,
               "max_relative_error": worst["relative_error"], "worst_node": worst["name"],
               "worst_format": worst["format"], "nodes_within_1e-6": sum(r["relative_error"] <= 1e-6 for r in rows),
               "by_format": {fmt: max(r["relative_error"] for r in rows if r["format"] == fmt)
                             for fmt in sorted({r["format"] for r in rows})}}
    batched = reference_logits(model_path, ids)
    spread = agreement(batched, reference_logits(model_path, ids, batched=False))

    def forward(matmul):
        return Llama(model, matmul=matmul, max_context=len(ids)).forward(ids, all_logits=True)
    host = {quantizer: forward(HostMatMul(quantizer=quantizer)) for quantizer in ("avx2", "ref")}
    own = agreement(host["avx2"], forward(ulp_nudged(HostMatMul(quantizer="avx2"))))
    bounds = calibrated_bounds(combined_spread(spread, own))
    result = {"llama_cpp_version": LLAMA_CPP_VERSION, "matmuls": matmuls, "spread": spread,
              "accelkit_ulp_spread": own, "bounds": bounds}
    for quantizer, ours in host.items():
        found = agreement(batched, ours)
        found["within_bounds"] = within_bounds(found, bounds)
        result[f"host_{quantizer}"] = found
    result["check_seconds"] = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}
    result["speed"] = []
    for count in threads:
        greedy, speed = _greedy_timed(model_path, list(prompt_ids), len(generated_ids), count)
        result["speed"].append(speed)
    result["greedy_ids"] = greedy
    result["same_greedy_tokens"] = greedy == list(generated_ids)
    return result


def _resources(accelerator):
    """The design's Yosys estimate on the Zynq-7020 (cached) and, when a timing run is cached, its measured Fmax."""
    figures = design_figures(accelerator, "xc7z020", progress=progress_printer())
    print_figures(f"{accelerator!r}", figures)
    return figures


def _rate(seconds):
    return f"{1 / seconds:.2f}" if seconds else "-"


def _speed(speed):
    if not speed["tokens_per_cpu_second"]:
        return "-"
    return f"{speed['tokens_per_second']:.1f} / {speed['tokens_per_cpu_second']:.1f}"


def _pair(found):
    return f"{found['top1_agreement']:.2f} / {found['mean_kl']:.1e}" + \
        ("" if found.get("within_bounds", True) else " (OUT)")


def _comparison_row(name, reference):
    m, b = reference["matmuls"], reference["bounds"]
    return [name, f"{m['nodes_within_1e-6']}/{m['nodes']}", f"{m['max_relative_error']:.1e} ({m['worst_node']})",
            _pair(reference["spread"]), _pair(reference["accelkit_ulp_spread"]), _pair(reference["host_avx2"]), _pair(reference["host_ref"]),
            f"{b['min_top1_agreement']:.2f} / {b['max_mean_kl']:.1e}", "yes" if reference["same_greedy_tokens"] else "no",
            ", ".join(f"{s['threads']}: {_speed(s)}" for s in reference["speed"])]


def llm_bench(args):
    accelerator = get_accelerator("bfp", parse_params(args.params))
    hardware = _resources(accelerator)
    rows, results, compared = [], [], []
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
                     _speed(reference["speed"][0]) if reference else "n/a"])
        if reference:
            compared.append(_comparison_row(name, reference))
    console.print(table(f"SmolLM2-135M on bfp ({args.params or 'default parameters'}), "
                        f"{args.dma_bytes} B/cycle, clock "
                        + (f"{report['clock_mhz']:g} MHz ({report['clock_source']})" if report["clock_mhz"]
                           else "unmeasured"),
                        ["variant", "cycles/token", "stream bound", "ratio", "tokens/s at clock",
                         "model backend tokens/s (wall)", "(CPU)", "RTL s/token (wall)", "(CPU)",
                         "RTL = model", "llama.cpp tokens/s, 1 thread (wall / CPU)"],
                        rows))
    if not have_llama_cpp:
        console.print(f"llama.cpp: {escape(LLAMA_CPP_MISSING)}")
    else:
        console.print(table(f"accelkit against llama.cpp {LLAMA_CPP_VERSION} (CPU): weight MatMul nodes of the prompt "
                            "through the eval callback; logits over prompt + generated ids (top-1 agreement / mean "
                            "KL), bounds calibrated on llama.cpp batched vs token by token and accelkit vs its 1-ulp-nudged self",
                            ["variant", "MatMul nodes <= 1e-6", "max rel. error (node)", "llama.cpp spread",
                             "accelkit 1-ulp spread",
                             "host, x86 quantizer", "host, ref quantizer (= bfp)", "bounds (top-1 >= / KL <=)",
                             "same greedy", "llama.cpp tokens/s by threads (wall / CPU)"], compared))
    return provenance("bench llm", accelerator=accelerator, prompt=args.prompt, tokens=args.tokens,
                      rtl_tokens=args.rtl, hardware=hardware, llama_cpp_available=have_llama_cpp, results=results)
