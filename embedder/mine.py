"""`python -m embedder.mine`: the same command as `python -m embedder mine` (embedder/cli.py)."""

from .cli import mine

if __name__ == "__main__":
    mine()
