"""The click command line (installed as ``minigraph.cli``)."""
