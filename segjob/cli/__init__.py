"""The command line: the only package that imports Typer or rich (contract in pyproject.toml)."""

from segjob.cli.app import app, main

__all__ = ["app", "main"]
