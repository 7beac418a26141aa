"""`accelkit bench llm`: SmolLM2-135M (requantized Q4_0, Q8_0, and Q4_0 with K-quant ffn_down) on bfp.

Prints measured figures: generation cycles per token against the weight-streaming
bound, tokens/s at the clock, the model backend's wall tokens/s, and, with
``--rtl N``, N generated tokens on the Verilator RTL (wall time per token, and
whether its tokens and cycles equal the model backend's). llama.cpp's own CPU
tokens/s are printed when llama-cpp-python is installed.
"""

import argparse
import time

from ..commands.llm import run_generation
from ..llm.smollm2 import VARIANTS, smollm2_variant
from ..reports.output import console, provenance, table

__all__ = ["llm_bench"]


def _args(args, model, backend, tokens):
    return argparse.Namespace(model=str(model), prompt=args.prompt, max_tokens=tokens, temperature=0.0, top_k=0,
                              top_p=1.0, seed=0, quantizer="ref", clock_mhz=args.clock_mhz, accel="bfp",
                              params=args.params, backend=backend, dma_bytes=args.dma_bytes,
                              dma_latency=args.dma_latency, json=None)


def _llama_cpp_tokens_per_second(model, prompt, tokens):
    try:
        import llama_cpp
    except ImportError:
        return None, "llama-cpp-python is not installed (an optional extra; it builds from source in ~7 min)"
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=256, verbose=False)
    started = time.perf_counter()
    llm(prompt, max_tokens=tokens, temperature=0.0)
    return tokens / (time.perf_counter() - started), ""


def llm_bench(args):
    rows, results = [], []
    for name in VARIANTS:
        model = smollm2_variant(name)
        text, report, accelerator = run_generation(_args(args, model, "model", args.tokens), stream=False)
        entry = {"variant": name, "model": str(model), "text": text, "model_backend": report}
        walls = report["wall_per_generated_token_steady_s"] or report["wall_per_generated_token_s"]
        rtl = None
        if args.rtl:
            rtl_text, rtl, _ = run_generation(_args(args, model, "verilator", args.rtl), stream=False)
            same_tokens = text.startswith(rtl_text)
            modelled = [r["cycles"] for r in report["records"][:len(rtl["records"])]]
            entry["rtl"] = {"report": rtl, "same_text_as_model": same_tokens,
                            "same_cycles_as_model": [r["cycles"] for r in rtl["records"]] == modelled}
        cpu, why = _llama_cpp_tokens_per_second(model, args.prompt, args.tokens)
        entry["llama_cpp_tokens_per_second"], entry["llama_cpp_note"] = cpu, why
        results.append(entry)
        rows.append([name, f"{report['generation_cycles_per_token']:,.0f}", f"{report['weight_stream_bound_cycles']:,.0f}",
                     f"{report['cycles_over_bound']:.3f}",
                     f"{report['tokens_per_second_at_clock']:.2f}" if report["tokens_per_second_at_clock"] else "-",
                     f"{1 / walls:.2f}" if walls else "-",
                     f"{rtl['wall_per_generated_token_s']:.2f}" if rtl and rtl["wall_per_generated_token_s"] else "-",
                     ("yes" if entry["rtl"]["same_text_as_model"] and entry["rtl"]["same_cycles_as_model"] else "NO")
                     if rtl else "-",
                     f"{cpu:.1f}" if cpu else "n/a"])
    console.print(table(f"SmolLM2-135M on bfp ({args.params or 'default parameters'}), "
                        f"{args.dma_bytes} B/cycle, clock "
                        + (f"{report['clock_mhz']:g} MHz ({report['clock_source']})" if report["clock_mhz"]
                           else "unmeasured"),
                        ["variant", "cycles/token", "stream bound", "ratio", "tokens/s at clock",
                         "model backend tokens/s (steady)", "RTL wall s/token", "RTL = model", "llama.cpp CPU tokens/s"],
                        rows))
    for entry in results:
        if entry["llama_cpp_note"]:
            console.print(f"llama.cpp: {entry['llama_cpp_note']}")
            break
    return provenance("bench llm", prompt=args.prompt, tokens=args.tokens, rtl_tokens=args.rtl, results=results)
