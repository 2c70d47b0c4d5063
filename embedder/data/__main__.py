"""`python -m embedder.data`: the same command as `python -m embedder data` (embedder/cli.py). Only run as a
script, so the data layer itself never imports the command line."""

from ..cli import data

data()
