"""`accelkit bench fuzz`: the full fuzzing campaign (mutated models and random command lines).

Prints measured counts of each outcome and which fields the mutations hit;
anything but success or a clean error is a failure, listed with its command
line so it can be reproduced (``--keep DIR`` keeps the mutated models).
"""

from ..reports.output import console, progress_printer, provenance, table
from ..verification.fuzz import FAILURES, OUTCOMES, fuzz

__all__ = ["fuzz_bench"]


def fuzz_bench(args):
    progress = progress_printer()
    progress(f"fuzzing: {args.mutants} mutated models, {args.cli_sets} command lines, seed {args.seed}, "
             f"{args.workers} workers")
    result = fuzz(models=args.mutants, cli=args.cli_sets, seed=args.seed, workers=args.workers,
                  tvm=not args.no_tvm, progress=progress, keep=args.keep)
    for campaign, summary in result.items():
        console.print(table(f"fuzz {campaign}: {summary['cases']} cases in {summary['wall_seconds']:.0f} s",
                            ["category", *OUTCOMES],
                            [[category, *(counts.get(k, 0) for k in OUTCOMES)]
                             for category, counts in summary["by_category"].items()]
                            + [["total", *(summary["outcomes"][k] for k in OUTCOMES)]]))
        for failure in summary["failures"][:20]:
            console.print(f"[bold red]{failure['kind']}[/bold red]: accelkit {' '.join(failure['argv'])}\n"
                          f"  ({failure['what']})\n  {failure['stderr_tail'][-400:]}", highlight=False)
    failed = sum(summary["outcomes"][k] for summary in result.values() for k in FAILURES)
    console.print(f"failures (traceback, internal error, signal, hang): {failed}", highlight=False)
    return provenance("bench fuzz", seed=args.seed, **result)
