"""``python -m minigraph ...`` and the ``minigraph`` command: the command line.

:func:`main` imports the command line inside a guard, so that a Ctrl-C while Python is still
importing it (a second or two on a busy machine) ends as any other Ctrl-C does: one line and
exit code 130, no traceback.

Under MPI: ``mpiexec -n N python -m mpi4py -m minigraph run MODEL --distributed``.
"""
import sys

INTERRUPTED = "interrupted (Ctrl-C); nothing was saved"


def main():
    try:
        from minigraph.cli.main import run_main
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED + "\n")
        sys.exit(130)
    run_main()


if __name__ == "__main__":
    main()
