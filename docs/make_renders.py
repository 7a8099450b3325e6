"""Regenerate the gallery: ``docs/models/NAME.svg`` for every model in ``models/``.

Small models are drawn with one forward and backward pass on their first training batch
(values and gradients on every edge); MNIST models are drawn as structure only, so no data
set is needed.  ``--plots`` also draws, into ``docs/plots/``, the training plots (needs
matplotlib and trains a few small models, some seconds).  The gallery index ``docs/README.md``
is rewritten to match.

    python docs/make_renders.py            # the graph pictures and the index
    python docs/make_renders.py --plots    # and the plots
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import minigraph as mg
from minigraph.api import draw

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DOCS = ROOT / "docs"


# The course order of shared/spec/curriculum.md; models not listed follow alphabetically.
ORDER = ["backprop_basics", "chain_rule", "or_perceptron", "xor_handset", "xor_single_layer",
         "xor", "xor_wide_deep", "linear_regression", "multivariable_regression", "noisy_line",
         "polynomial_regression", "circles", "mnist_softmax", "mnist_mlp", "mnist_cnn",
         "mnist_cnn_deep", "optimizer_race", "autoencoder",
         "rnn_sine", "lstm_windows", "lstm_weather", "memory_rnn", "memory_lstm"]


def model_files() -> list:
    files = sorted(MODELS.glob("*.yaml"))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(files, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def needs_dataset(graph) -> bool:
    """True when the model reads a downloaded data set (MNIST) rather than inline data."""
    return "dataset" in str(graph.spec.data)


def render_models(out_dir: Path) -> list:
    """Draw every model; returns (name, graph, what was drawn) rows for the index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in model_files():
        graph = mg.load_graph(path)
        if needs_dataset(graph):
            picture, shown = draw(graph), "structure"
        elif graph.loss is None:
            picture, shown = draw(path, values=True), "values"
        else:
            picture, shown = draw(path, grads=True), "values and gradients"
        picture.save(out_dir / f"{path.stem}.svg")
        print(f"docs/models/{path.stem}.svg  ({shown})")
        rows.append((path.stem, graph, shown))
    return rows


def make_plots(out_dir: Path) -> list:
    """Training plots for the gallery; returns (file name, caption) pairs."""
    import tempfile

    from minigraph.plots import plot_decision_boundary, plot_log, plot_optimizer_race
    from minigraph.api import run_model

    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "circles.jsonl"
        params = Path(tmp) / "circles.npz"
        run_model(MODELS / "circles.yaml", log=str(log), save=str(params))
        plot_log(log, out_dir / "circles_curves.png", title="circles: training curves")
        made.append(("circles_curves.png", "circles: loss and accuracy per epoch"))
        plot_decision_boundary(MODELS / "circles.yaml", str(params),
                               out_dir / "circles_boundary.png")
        made.append(("circles_boundary.png", "circles: the learned decision boundary"))
    plot_decision_boundary(MODELS / "xor.yaml", None, out_dir / "xor_boundary.png")
    made.append(("xor_boundary.png", "xor: the 2-2-1 network's boundary after training"))
    plot_decision_boundary(MODELS / "xor_handset.yaml", None,
                           out_dir / "xor_handset_boundary.png")
    made.append(("xor_handset_boundary.png", "xor_handset: the hand-set weights' boundary"))
    plot_optimizer_race(MODELS / "optimizer_race.yaml", out_dir / "optimizer_race.png")
    made.append(("optimizer_race.png", "optimizer_race: nine optimizers on Beale's function "
                                       "(each with its default learning rate)"))
    made += make_recurrent_plots(out_dir)
    for name, _ in made:
        print(f"docs/plots/{name}")
    return made


def make_recurrent_plots(out_dir: Path) -> list:
    """Backpropagation through time: the RNN's gradient vanishing beside the LSTM's."""
    from minigraph.bptt import plot_bptt

    plot_bptt([MODELS / "memory_rnn.yaml", MODELS / "memory_lstm.yaml"],
              out_dir / "memory_bptt.png")
    return [("memory_bptt.png", "memory_rnn against memory_lstm: mean |dL/dx_t| per step t "
                                "(`minigraph plot bptt`), on a log scale")]


def write_index(rows: list, plots: list) -> None:
    lines = [
        "# Gallery: the curriculum, drawn by minigraph",
        "",
        "Every model in [`models/`](../models) drawn with `minigraph render`. The small models",
        "show one forward and backward pass on their first training batch: each computed",
        "tensor's edge carries its name, shape, value and gradient of the loss (a param's, input's",
        "or constant's numbers are in its node; gradients are drawn for what is learned and",
        "computed, `--all-grads` adds data and constants); colour and width follow the gradient's",
        "size (grey: tiny, blue: about 1, red: large; dashed: zero or below 1e-7). MNIST models",
        "are drawn as structure, with their layers as clusters.",
        "",
        "Regenerate with `python docs/make_renders.py` (add `--plots` for the plots below).",
        "",
        "| model | drawn | command |",
        "| --- | --- | --- |",
    ]
    for name, _graph, shown in rows:
        flag = "" if shown == "structure" else (" --values" if shown == "values" else " --grads")
        lines.append(f"| [{name}](models/{name}.svg) | {shown} | "
                     f"`minigraph render models/{name}.yaml{flag}` |")
    for name, graph, shown in rows:
        about = (graph.spec.description or "").strip().split(". ")[0].replace("\n", " ")
        lines += ["", f"## {name}", "", f"{about}." if about else "", "",
                  f"![{name}: {shown}](models/{name}.svg)"]
    if plots or (DOCS / "plots").is_dir():
        plots = plots or [(p.name, p.stem.replace("_", " "))
                          for p in sorted((DOCS / "plots").glob("*.png"))]
        lines += ["", "## Plots", "",
                  "Drawn with `minigraph plot curves|boundary|race` (needs "
                  "`pip install 'minigraph[plot]'`).", ""]
        for name, caption in plots:
            lines += [f"**{caption}**", "", f"![{caption}](plots/{name})", ""]
    (DOCS / "README.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print("docs/README.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", action="store_true", help="also draw the training plots")
    args = parser.parse_args(argv)
    rows = render_models(DOCS / "models")
    plots = make_plots(DOCS / "plots") if args.plots else []
    write_index(rows, plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
