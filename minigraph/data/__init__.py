"""Training and test data for minigraph models: the ``data`` section of a model file.

A model file names where its data comes from; this package turns that description into NumPy
arrays keyed by the model's input names, and cuts them into mini-batches during training::

    data:
      train: {inline: {x: [[0,0],[0,1],[1,0],[1,1]], t: [[0],[1],[1],[0]]}}
      test:  {dataset: mnist, split: test, scale: 255, flatten: true, one_hot: false}

``train`` is required when there is a ``data`` section; ``test`` is optional.  Each of them is
a *source*: a mapping with exactly one of the keys ``inline``, ``file``, ``generator`` or
``dataset``, plus that kind's options.

Keys every source accepts
-------------------------
``limit: N``            keep only the first N examples.
``test_fraction: F``    (train only, 0 < F < 1) split this source into train and test: a random
                        fraction F of the examples becomes the test set.  Cannot be combined
                        with a ``test`` source.
``split_seed: S``       seed of that random split (default 0).  Each part keeps file order.

Sources
-------
``inline: {NAME: nested list, ...}``
    Arrays written in the file, keyed by the model's input names.  Nothing is reshaped: what
    you write is what the model gets.

``file: PATH``  (relative to the model file's folder)
    * CSV (any other suffix; ``.tsv`` means tab-separated): numbers only, except an optional
      header row (recognised because it is not all numbers); blank lines and lines starting
      with ``#`` are skipped.  ``delimiter`` (default ``","``).
    * ``.npy``: one array, cut into inputs like a CSV table.
    * ``.npz``: ``keys: {x: X, t: y}`` maps input name -> array name in the archive
      (default: every model input whose name is an array in the archive).

    ``columns: {x: [0, 1], t: [2]}`` maps input names to column indices (a list gives an
    ``(n, k)`` array, a single index an ``(n,)`` vector; with a header row, column names may
    be used instead of indices).  Without ``columns`` the table goes to ``names`` (default: the
    first two model inputs): all columns but the last to the first name, the last column to the
    second; with a single name, the whole table goes to it.

``generator: NAME`` (synthetic data; see ``generators.GENERATORS`` for every option and its
default)
    ``xor``, ``and``, ``or``, ``nand``   the four rows of a truth table;
                                         ``targets: binary`` (0/1) or ``sign`` (-1/+1).
    ``circles``   two noisy concentric circles (like scikit-learn's make_circles).
    ``moons``     two interleaving half circles (like scikit-learn's make_moons).
    ``spiral``    a spiral of ``classes`` arms, ``n`` points per arm (CS231n's toy data).
    ``linear``    ``y = w*x + b + N(0, noise)``, x uniform in [low, high]; a list ``w`` gives
                  one feature per weight (``y = x . w + b``).
    ``polynomial`` ``y = c0 + c1*x + c2*x^2 + ... + N(0, noise)`` with ``coefficients``.
    ``sine``      a time series (``n`` steps): ``amplitude * sin(2 pi t / period + phase) +
                  trend * t + noise``; one column ``value``.
    ``drive``     a simulated drive, ``n`` seconds (default 1,000) of four correlated columns
                  ``speed rpm brake latitude``.
                  Without a ``window`` a series gives each step and the next step as its
                  target; with one, sliding windows (below).

    A generator makes features and targets; ``names: [x, t]`` says which model inputs get them
    (default: the first two inputs in the model's ``inputs`` order; a single name keeps only
    the features).  Targets are ``(n, 1)`` for two-class and regression sets; spiral gives
    ``(n,)`` int64 class indices, or ``(n, classes)`` with ``one_hot: true``.  Every random
    generator takes ``seed`` (default 0), so the same file always gives the same data.

``dataset: mnist``
    ``split``     ``train`` (60,000 images) or ``test`` (10,000); default: the section's name.
    ``scale``     divide pixel values by this number; ``true`` = 255, ``false`` = keep 0..255.
                  Default 255 (pixels in [0, 1]).
    ``flatten``   ``true``: images ``(n, 784)``; ``false``: ``(n, 1, 28, 28)`` (NCHW).
                  Default: follow the rank of the image input's declared shape
                  (rank 2 -> flat, rank 3 -> ``(n, 28, 28)``, otherwise NCHW).
    ``one_hot``   ``false``: labels are class indices ``(n,)``; ``true``: ``(n, 10)`` rows of
                  0/1.  Default: one-hot exactly when the label input's declared rank is 2.
    ``names``     ``[images, labels]``, default the first two model inputs; a single name keeps
                  only the images (an autoencoder needs no labels).
    ``limit``     the first N examples (quick experiments and tests).

    The four standard IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``) are looked
    for in: the ``data_dir`` argument (the CLI's ``--data-dir``), then the environment variable
    ``MINIGRAPH_DATA``, then ``~/.minigraph/data/mnist``.  Each of these folders may also hold
    the files in an ``mnist/`` subfolder.

``window: {size, horizon, stride, features, target, standardize}`` (a CSV file with a header
row, or a series generator; the train source only)
    Sliding windows of a time series: ``x (N, size, F)`` of the ``features`` columns and
    ``t (N, len(target))``, the ``target`` columns ``horizon`` steps after each window
    (``names: [x, t]``).  ``test_fraction`` then splits **by time** (the last steps become
    the test windows; no window crosses the cut), ``standardize: true`` scales each column
    with the training part's mean and standard deviation only, and the run reports the
    persistence forecast's ``persistence_mse`` beside the loss.  See ``window.py``.

After loading, every array is cast to its input's declared ``dtype`` (default ``float32``) and
checked against the input's declared ``shape``.  For generated data, ``.npz`` arrays and the
default columns of a table (not for inline data or explicit ``columns``), an ``(n, 1)`` column
and an ``(n,)`` vector are converted into each other to fit the declared rank.

The package has one module per job: ``sources`` (dispatch, ``limit``, ``test_fraction``),
one per source kind (``inline``, ``files``, ``generators``, ``mnist``), ``context`` (the
per-split context that locates errors and checks options), ``kinds`` (the kinds of option
value), ``checks`` (dtype and shape checks) and ``batches``.
"""
from __future__ import annotations

from .batches import Batches, iterate_batches, num_examples
from .generators import GENERATORS
from .series import SERIES  # registers the series generators (sine, drive)
from .mnist import DEFAULT_MNIST_DIR, MNIST_FILES, mnist_files
from .sources import DataSplits, load_data

__all__ = [
    "DataSplits",
    "load_data",
    "Batches",
    "iterate_batches",
    "num_examples",
    "mnist_files",
    "GENERATORS",
    "SERIES",
    "MNIST_FILES",
    "DEFAULT_MNIST_DIR",
]
