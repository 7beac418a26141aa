"""`accelkit llm MODEL.gguf`: generate text with a llama GGUF whose quantized MatMuls run on an accelerator.

Streams the generated text, then reports per MatMul kind where it ran, the
cycles and weight bytes it cost, cycles per token for the prompt and for
generation against the weight-streaming bound, tokens/s at the clock, and wall
time per token.
"""

import sys
import time
from collections import defaultdict

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...errors import ParameterError
from ..execution.executors import open_executor
from . import arguments
from ..llm.accelerated import AcceleratorMatMul
from ..llm.forward import Llama, Sampler
from ..llm.gguf_model import load_llama
from ..llm.tokenizer import build_tokenizer
from ..reports.clock import report_clock
from ..reports.output import console, provenance, table, write_json

__all__ = ["add_arguments", "run", "generate_report"]


def add_arguments(parser):
    parser.add_argument("model", help="a llama-architecture .gguf file")
    parser.add_argument("--prompt", required=True, help="prompt text")
    parser.add_argument("--max-tokens", type=arguments.positive_int("token count", 1 << 20), default=16, help="tokens to generate (default 16)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy")
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=arguments.seed, default=0)
    parser.add_argument("--quantizer", choices=("ref", "avx2"), default="ref",
                        help="host activation quantizer (ggml's reference or its x86 AVX2 rounding)")
    parser.add_argument("--clock-mhz", type=arguments.clock_mhz, default=None,
                        help="clock for tokens/s (default: the design's ECP5-85F place-and-route Fmax when cached, "
                        "else tokens/s is not shown)")


def _phase_totals(records):
    kinds = defaultdict(lambda: {"calls": 0, "cycles": 0, "weight_bytes": 0, "where": set(), "fmt": set(),
                                 "seconds": 0.0, "reason": ""})
    for r in records:
        k = kinds[r.kind]
        k["calls"] += 1
        k["cycles"] += r.cycles
        k["weight_bytes"] += r.weight_bytes
        k["seconds"] += r.seconds
        k["where"].add(r.where)
        k["fmt"].add(r.fmt)
        if r.reason:
            k["reason"] = r.reason
    return kinds


def generate_report(records, forwards, prompt_tokens, generated, dma, clock_mhz, walls, clock_source=None):
    """Figures of one generation: ``forwards`` is the list of record counts after each forward.

    ``clock_mhz`` None (an unmeasured clock) leaves tokens/s at the clock out.
    """
    bounds = [0] + list(forwards)
    per_forward = [records[bounds[i]:bounds[i + 1]] for i in range(len(forwards))]
    prompt, gen = per_forward[0] if per_forward else [], [r for f in per_forward[1:] for r in f]
    gen_forwards = max(len(per_forward) - 1, 0)

    def cycles(rs):
        return sum(r.cycles for r in rs)

    def streamed(rs):
        return sum(r.weight_bytes for r in rs)

    gen_cycles = cycles(gen) / gen_forwards if gen_forwards else 0
    gen_bytes = streamed(gen) / gen_forwards if gen_forwards else 0
    bound = gen_bytes / dma.bytes_per_cycle
    report = {
        "prompt_tokens": prompt_tokens, "generated_tokens": generated,
        "prompt_cycles": cycles(prompt), "prompt_cycles_per_token": cycles(prompt) / max(prompt_tokens, 1),
        "generation_cycles_per_token": gen_cycles,
        "weight_bytes_per_generated_token": gen_bytes,
        "weight_stream_bound_cycles": bound,
        "cycles_over_bound": gen_cycles / bound if bound else None,
        "tokens_per_second_at_clock": clock_mhz * 1e6 / gen_cycles if gen_cycles and clock_mhz else None,
        "clock_mhz": clock_mhz, "clock_source": clock_source,
        "wall_prompt_s": walls[0] if walls else 0.0,
        "wall_per_generated_token_s": sum(walls[1:]) / len(walls[1:]) if len(walls) > 1 else None,
        # the first generation forward also plans and costs the one-token MatMul shapes (cached afterwards)
        "wall_per_generated_token_steady_s": float(np.median(walls[2:])) if len(walls) > 2 else None,
        "host_matmul_seconds": sum(r.seconds for r in records if r.where == "host"),
        "accelerator_matmul_seconds": sum(r.seconds for r in records if r.where != "host"),
        "kinds": {},
    }
    for phase, rs in (("prompt", prompt), ("generation", gen)):
        for kind, k in _phase_totals(rs).items():
            entry = report["kinds"].setdefault(kind, {"formats": sorted(k["fmt"]), "where": sorted(k["where"]),
                                                      "host_reason": k["reason"]})
            entry[f"{phase}_cycles"] = k["cycles"]
            entry[f"{phase}_weight_bytes"] = k["weight_bytes"]
            entry[f"{phase}_seconds"] = k["seconds"]
    return report


def _print_report(report, accelerator_name, backend):
    rows = []
    for kind, k in report["kinds"].items():
        where = ", ".join(k["where"])
        rows.append([kind, ", ".join(k["formats"]), where, f"{k.get('prompt_cycles', 0):,}",
                     f"{k.get('generation_cycles', 0):,}", f"{k.get('generation_weight_bytes', 0):,}",
                     f"{k.get('prompt_seconds', 0) + k.get('generation_seconds', 0):.2f}",
                     k["host_reason"][:60]])
    console.print(table(f"MatMuls on {accelerator_name} ({backend})",
                        ["kind", "formats", "ran on", "prompt cycles", "generation cycles",
                         "weight bytes (generation)", "wall s", "why on host"], rows))
    ratio = report["cycles_over_bound"]
    tps = report["tokens_per_second_at_clock"]
    wall = report["wall_per_generated_token_s"]
    console.print(
        f"prompt: {report['prompt_tokens']} tokens, {report['prompt_cycles_per_token']:,.0f} cycles/token, "
        f"wall {report['wall_prompt_s']:.2f} s\n"
        f"generation: {report['generated_tokens']} tokens, {report['generation_cycles_per_token']:,.0f} cycles/token"
        + (f" ({ratio:.3f}x the weight-streaming bound of {report['weight_stream_bound_cycles']:,.0f})" if ratio else "")
        + (f", {tps:.2f} tokens/s at {report['clock_mhz']:g} MHz ({report.get('clock_source')})" if tps else
           ", clock unmeasured (no tokens/s)" if report["clock_mhz"] is None else "")
        + (f", wall {wall:.3f} s/token" if wall is not None else "")
        + (f" ({report['wall_per_generated_token_steady_s']:.3f} s steady)"
           if report["wall_per_generated_token_steady_s"] is not None else "")
        + (f", CPU {report['cpu_per_generated_token_s']:.3f} s/token" if report.get("cpu_per_generated_token_s")
           is not None else ""))


def run_generation(args, stream=True):
    """Generate as the command does; returns (text, report, accelerator)."""
    if args.max_tokens < 1:
        raise ParameterError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    model = load_llama(args.model)
    tokenizer = build_tokenizer(model.metadata, args.model)
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
        raise ParameterError("the prompt encodes to no tokens")
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    if "block_matmul" not in getattr(accelerator, "kinds", ()):
        raise ParameterError(f"accelerator {args.accel!r} does not run quantized MatMuls (block_matmul); "
                             f"use --accel bfp")
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    sampler = Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    with open_executor(accelerator, args.backend, dma) as executor:
        hook = AcceleratorMatMul(accelerator, executor, quantizer=args.quantizer)
        llama = Llama(model, matmul=hook, max_context=len(prompt) + args.max_tokens)
        forwards, walls, cpus, out, shown = [], [], [], [], ""
        forward = llama.forward

        def timed_forward(tokens, **kwargs):       # one forward per prompt batch or generated token
            started, cpu = time.perf_counter(), time.process_time()
            logits = forward(tokens, **kwargs)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            forwards.append(len(hook.records))
            return logits

        llama.forward = timed_forward
        for token in llama.generate(prompt, args.max_tokens, sampler=sampler, stop=tokenizer.eos):
            out.append(token)
            text = tokenizer.decode(out)
            if stream and text.startswith(shown):
                sys.stdout.write(text[len(shown):])
                sys.stdout.flush()
            shown = text
    if stream:
        sys.stdout.write("\n")
    clock = report_clock([accelerator], args.clock_mhz)
    report = generate_report(hook.records, forwards, len(prompt), len(out), dma, clock.mhz, walls, clock.source)
    # CPU seconds of this process (its threads included): on a shared machine the wall time also counts
    # the time other processes held the cores
    report["cpu_per_generated_token_s"] = sum(cpus[1:]) / len(cpus[1:]) if len(cpus) > 1 else None
    report["cpu_per_generated_token_steady_s"] = float(np.median(cpus[2:])) if len(cpus) > 2 else None
    report["text"] = shown
    report["prompt_ids"], report["generated_ids"] = [int(i) for i in prompt], [int(i) for i in out]
    report["records"] = [r.as_dict() for r in hook.records]
    return shown, report, accelerator


def run(args):
    text, report, accelerator = run_generation(args)
    _print_report(report, accelerator.name, args.backend)
    if args.json:
        write_json(args.json, provenance("llm", accelerator=accelerator, backend=args.backend,
                                         dma=DmaTiming(args.dma_bytes, args.dma_latency), seed=args.seed,
                                         model=str(args.model), prompt=args.prompt, **report))
    return 0
