"""`python -m embedder mine|merge|data …` (embedder/cli.py)."""

from .cli import main

main()
