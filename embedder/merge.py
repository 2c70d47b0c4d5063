"""`python -m embedder.merge`: the same command as `python -m embedder merge` (embedder/cli.py)."""

from .cli import merge

if __name__ == "__main__":
    merge()
