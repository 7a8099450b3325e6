"""``python -m minigraph ...``: the command line, as the ``minigraph`` command.

Under MPI: ``mpiexec -n N python -m mpi4py -m minigraph run MODEL --distributed``.
"""
from minigraph.cli.main import run_main

if __name__ == "__main__":
    run_main()
