"""Console output shared by every command: the rich console, tables, progress lines.

Apart from :mod:`.output` (provenance, durable files), so that the board-side
bundle, which prints the same reports on a board, carries only this and rich.
"""

import sys
import time

from rich.console import Console
from rich.table import Table

__all__ = ["console", "error_console", "progress_printer", "table"]

console = Console(width=None if sys.stdout.isatty() else 160)
error_console = Console(stderr=True)


def progress_printer(prefix="accelkit"):
    """A progress callback that prints timestamped lines on stderr (long builds and runs)."""
    started = time.monotonic()

    def report(message):
        error_console.print(f"[dim]{prefix} {time.monotonic() - started:6.1f}s[/dim] {message}", highlight=False)
    return report


def table(title, columns, rows):
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, justify="left" if column in ("op", "where", "backend", "name", "check") else "right")
    for row in rows:
        result.add_row(*(_cell(v) for v in row))
    return result


def _cell(value):
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
