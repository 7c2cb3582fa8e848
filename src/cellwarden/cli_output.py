"""What every ``cellwarden`` command prints with: the consoles and the error exit."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
error_console = Console(stderr=True)


def fail(error: Exception | str) -> typer.Exit:
    """Print the error and end the command with exit code 2."""
    error_console.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    return typer.Exit(code=2)
