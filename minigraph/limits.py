"""Explicit limits on what a model file, a data file or a checkpoint may ask for.

A hostile or mistaken file must end in one clear message, quickly, allocating nothing large:
these bounds are checked *before* anything is read, parsed further or allocated.  They are far
above what any lesson needs (the largest curriculum tensor, a full MNIST batch, holds 47
million numbers) and far below what would exhaust a 24 GiB machine.
"""
from __future__ import annotations

MAX_MODEL_FILE_BYTES = 64 << 20       # a model file (YAML or JSON) on disk
MAX_NESTING = 64                      # nesting of maps and lists in a model file
MAX_VALUES = 2_000_000                # values in a model file after YAML aliases are expanded
MAX_ALIASES = 10_000                  # YAML aliases (*name) in a model file
MAX_STRING = 10_000                   # characters of one string (a name, a path ...)
MAX_DESCRIPTION = 200_000             # characters of the description
MAX_NAME = 200                        # characters of a tensor, node or param name
MAX_INT_DIGITS = 30                   # digits of an integer anywhere in a model file
MAX_DIM = 1 << 31                     # one dimension of a tensor
MAX_RANK = 32                         # dimensions of one tensor (NumPy allows 64)
MAX_ELEMENTS = 1 << 28                # numbers in one tensor (1 GiB as float32)
MAX_EXAMPLE_ELEMENTS = 1 << 24        # numbers per example of a tensor with a batch dimension
                                      # (64 MiB as float32; a batch multiplies it)
MAX_DATA_BYTES = 8 << 30              # bytes of one array read from a data or checkpoint file
MAX_EPOCHS = 1_000_000_000            # epochs of one run

# The data section (minigraph/data/)
MAX_CSV_BYTES = 128 << 20             # a CSV/TSV data file (mnist_train.csv is 105 MiB)
MAX_NPZ_MEMBERS = 1_000               # arrays in one .npz archive
MAX_EXAMPLES = 1 << 31                # a count of examples: ``limit``, a generator's ``n``
MAX_GENERATED = 1_000_000             # examples a generator makes (spiral: n * classes)
MAX_GENERATED_NUMBERS = 20_000_000    # n * features, n * coefficients, one-hot n * classes^2
MAX_CLASSES = 1_000                   # spiral arms
MAX_TERMS = 1_000                     # linear weights ``w``, polynomial ``coefficients``
MAX_OPTION = 1e6                      # |value| of a generator's real option (low, noise, w ...)
MAX_SEED = (1 << 64) - 1              # seeds of generators and of the train/test split


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for huge integers and odd strings.

    Error messages quote what the user wrote; a 5,000-digit number or a megabyte of text must
    not become the message (and ``repr`` of a huge int raises in Python 3.11+).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a {len(str(abs(value))) if value.bit_length() < 14000 else 'many'}-digit number"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."
