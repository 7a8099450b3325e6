"""The learner's API and tools (issue 14, points 6-10a, 17, 18): trained weights in and out,
inference without targets, short reprs, notebook progress, custom ops from Python and the
command line, summary, ops, the sampled gradient check, file identity, checkpoint files."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import minigraph as mg
from minigraph.api import run_model
from minigraph.cli.main import main
from minigraph.errors import DataError, GradientShapeError, MinigraphError, ModelError
from minigraph.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
XOR = str(MODELS / "xor.yaml")
CIRCLES = str(MODELS / "circles.yaml")
MINIGRAPH = str(Path(sys.executable).parent / "minigraph")


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def trained_circles(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "circles.npz"
    result = invoke("run", CIRCLES, "--epochs", 30, "--save", path, "--quiet")
    assert result.exit_code == 0, result.output
    return path


# ==== 6. trained weights in and out ===============================================================

def test_load_with_params_path_gives_the_trained_params(trained_circles):
    saved = dict(np.load(trained_circles))
    m = mg.load(CIRCLES, params=trained_circles)
    for name in m.graph.params:
        np.testing.assert_array_equal(m.value(name), saved[f"param/{name}"])


def test_save_params_then_load_params_round_trips(tmp_path):
    a = mg.load(XOR, seed=3)
    a.save_params(tmp_path / "p.npz")
    b = mg.load(XOR, seed=4)
    assert not np.array_equal(a.value("W1"), b.value("W1"))
    b.load_params(tmp_path / "p.npz")
    for name in a.graph.params:
        np.testing.assert_array_equal(a.value(name), b.value(name))
    # the file is a checkpoint `run --load` and `eval --params` accept
    assert invoke("eval", XOR, "--params", tmp_path / "p.npz").exit_code == 0


def test_set_params_with_checkpoint_keys_points_at_load_params(trained_circles):
    m = mg.load(CIRCLES)
    with pytest.raises(MinigraphError, match=r"load_params"):
        m.set_params(dict(np.load(trained_circles)))


def test_save_model_accepts_a_graph_and_a_model(tmp_path):
    graph = mg.load_graph(XOR)
    mg.save_model(graph, tmp_path / "g.yaml")
    mg.save_model(mg.load(XOR), tmp_path / "m.json")
    assert mg.load_graph(tmp_path / "g.yaml").to_dict() == graph.to_dict()
    assert mg.load_graph(tmp_path / "m.json").to_dict() == graph.to_dict()


# ==== 7. inference without targets ================================================================

def test_predict_needs_only_the_inputs_of_the_outputs(trained_circles):
    m = mg.load(CIRCLES, params=trained_circles)
    x = np.array([[0.0, 0.0], [0.9, 0.9]])
    with pytest.raises(DataError, match="no data for input 't'"):
        m.forward({"x": x})
    y = m.predict(x=x)["y"]
    assert y.shape == (2, 1) and np.all((y > 0) & (y < 1))
    # the same as a full forward pass with any targets
    full = m.forward({"x": x, "t": np.zeros((2, 1))})["y"]
    np.testing.assert_allclose(y, full)
    # targets may be given (left unread); a name that is no input is refused
    np.testing.assert_allclose(m.predict({"x": x, "t": np.ones((2, 1))})["y"], y)
    with pytest.raises(MinigraphError, match="not an input"):
        m.predict(z=x)
    with pytest.raises(DataError, match="needs input"):
        m.predict(t=np.ones((2, 1)))


def test_predict_in_batches_equals_one_pass_and_drops_dropout():
    m = mg.load(MODELS / "mnist_mlp.yaml")
    x = np.random.default_rng(0).uniform(0, 1, (300, 784))
    whole = m.predict(x=x, batch_size=300)["log_probs"]
    parts = m.predict(x=x, batch_size=64)["log_probs"]
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(x=x[:5])["log_probs"], whole[:5], rtol=1e-5, atol=1e-6)


def test_predict_command_reads_csv_and_npy(tmp_path, trained_circles):
    (tmp_path / "points.csv").write_text("0,0\n0.9,0.9\n")
    result = invoke("predict", CIRCLES, "--params", trained_circles,
                    "--input", tmp_path / "points.csv")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "y[0]" and len(lines) == 3
    expected = mg.load(CIRCLES, params=trained_circles).predict(x=[[0, 0], [0.9, 0.9]])["y"]
    np.testing.assert_allclose([float(v) for v in lines[1:]], expected[:, 0], rtol=1e-5)
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    result = invoke("predict", XOR, "--input", tmp_path / "x.npy", "--output", "h")
    assert result.exit_code == 0 and result.output.splitlines()[0] == "h[0],h[1]"
    bad = invoke("predict", XOR, "--input", tmp_path / "x.npy", "--output", "hh")
    assert bad.exit_code == 2 and "did you mean 'h'" in bad.output


# ==== 8. reprs and notebook progress ==============================================================

def test_one_line_reprs():
    graph = mg.load_graph(XOR)
    assert repr(graph) == "Graph('xor', 7 nodes, 4 params, 9 parameters)"
    assert repr(mg.load(XOR)) == "Model('xor', 7 nodes, 4 params, 9 parameters, numpy float32)"
    result = run_model(XOR, epochs=3)
    text = repr(result)
    assert "\n" not in text and len(text) < 200
    assert text.startswith("RunResult('xor', 3 epochs done, loss ")
    assert "accuracy" in text
    forward = repr(run_model(MODELS / "backprop_basics.yaml"))
    assert forward == "RunResult('backprop_basics', one forward pass: f (), loss -7)"


def test_notebook_progress_lines_without_widgets():
    from minigraph.notebook import NotebookProgress

    shown = []

    class Handle:
        def update(self, text):
            shown.append(text)

    def display(text, display_id=False):
        shown.append(text)
        return Handle()

    progress = NotebookProgress(widget=False, display=display)
    run_model(XOR, epochs=20, callback=progress, train={"log_every": 10})
    assert shown[0] == "training: 20 epochs"
    assert [s.split(":")[0] for s in shown[1:]] == ["epoch 1", "epoch 10", "epoch 20"]
    assert shown[-1].endswith("(20/20)") and "loss" in shown[-1]


def test_run_model_outside_a_notebook_shows_nothing(capsys):
    from minigraph.notebook import in_notebook, notebook_progress

    assert not in_notebook() and notebook_progress() is None
    run_model(XOR, epochs=2)
    assert capsys.readouterr() == ("", "")


# ==== 9. custom ops ===============================================================================

def test_registering_a_builtin_name_is_refused_unless_override():
    relu = REGISTRY["relu"]
    with pytest.raises(ModelError, match="built-in op.*override=True"):
        mg.register_op("relu", lambda x: x, lambda xs, y, gy: (gy,))
    with pytest.raises(ModelError, match="built-in layer op"):
        mg.register_op("linear", lambda x: x, lambda xs, y, gy: (gy,))
    assert REGISTRY["relu"] is relu
    try:
        mg.register_op("relu", lambda x: x, lambda xs, y, gy: (gy,), override=True)
        assert REGISTRY["relu"] is not relu
    finally:
        REGISTRY["relu"] = relu
    # a custom op may be registered again (a notebook cell run twice)
    mg.register_op("twice_t", lambda x: 2 * x, lambda xs, y, gy: (2 * gy,))
    mg.register_op("twice_t", lambda x: 2 * x, lambda xs, y, gy: (2 * gy,))


def test_a_wrong_shaped_custom_gradient_is_named():
    mg.register_op("badgrad_t", lambda x: x * 2, lambda xs, y, gy: (gy.sum(axis=0),))
    b = mg.GraphBuilder("bad")
    x = b.input("x", ["batch", 3])
    W = b.param("W", [3, 3], init="ones")
    h = b.matmul(x, W, name="fc", out="h")
    b.output(b.node("badgrad_t", [h], name="twice", out="y"))
    m = mg.Model(b.build())
    m.forward({"x": np.ones((2, 3))})
    with pytest.raises(GradientShapeError) as info:
        m.backward("y")
    text = str(info.value)
    for part in ("custom op 'badgrad_t'", "node 'twice'", "input 'x'", "tensor 'h'",
                 "shape (3)", "shape (2, 3)"):
        assert part in text


CUSTOM_MODULE = '''
import minigraph as mg
mg.register_op("cube_t", lambda x: x ** 3, lambda xs, y, gy: (3 * xs[0] ** 2 * gy,),
               doc="x cubed")
'''

CUSTOM_MODEL = """minigraph: 1
name: cubes
inputs:
  x: {shape: [batch, 1]}
  t: {shape: [batch, 1]}
params:
  w: {shape: [1, 1], init: 0.5}
nodes:
  - {name: fc, op: matmul, inputs: [x, w], outputs: [z]}
  - {name: cube, op: cube_t, inputs: [z], outputs: [y]}
  - {name: loss, op: mse, inputs: [y, t], outputs: [L]}
outputs: [y]
loss: L
data:
  train: {inline: {x: [[1], [2]], t: [[1], [8]]}}
train: {epochs: 3, optimizer: {type: sgd, lr: 0.01}}
"""


def test_custom_ops_from_the_command_line_with_import(tmp_path, monkeypatch):
    (tmp_path / "my_ops_t.py").write_text(CUSTOM_MODULE)
    (tmp_path / "cubes.yaml").write_text(CUSTOM_MODEL)
    monkeypatch.chdir(tmp_path)
    without = subprocess.run([MINIGRAPH, "check", "cubes.yaml"],
                             capture_output=True, text=True, env=_env())
    assert without.returncode == 2 and "unknown op 'cube_t'" in without.stderr
    for command in (["check", "cubes.yaml"], ["run", "cubes.yaml", "--quiet"]):
        done = subprocess.run([MINIGRAPH, "--import", "my_ops_t",
                               *command], capture_output=True, text=True, env=_env())
        assert done.returncode == 0, done.stderr
    missing = invoke("--import", "no_such_module_t", "ops")
    assert missing.exit_code == 2 and "cannot import module 'no_such_module_t'" in missing.output
    path = invoke("--import", "my_ops_t.py", "ops")
    assert path.exit_code == 2 and "module name" in path.output


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_builder_sets_loss_data_and_train(tmp_path):
    b = mg.GraphBuilder("tiny")
    x, t = b.input("x", ["batch", 2]), b.input("t", ["batch", 1])
    W = b.param("W", [2, 1], init="zeros")
    y = b.matmul(x, W, name="fc", out="y")
    b.output(y)
    assert b.set_loss(b.mse(y, t, name="cost", out="L")) == "L"
    b.set_data({"inline": {"x": [[0, 1], [1, 0]], "t": [[1], [2]]}})
    b.set_train(epochs=200, optimizer={"type": "sgd", "lr": 0.1})
    b.save(tmp_path / "tiny.yaml")
    result = run_model(tmp_path / "tiny.yaml")
    assert result.history.last["loss"] < 1e-3
    assert yaml.safe_load((tmp_path / "tiny.yaml").read_text())["train"]["epochs"] == 200
    for method in (b.set_loss, b.set_data, b.set_train):
        assert method.__doc__


# ==== 10. summary and ops =========================================================================

def test_summary_counts_a_shared_param_once_and_has_a_footer():
    out = invoke("summary", MODELS / "optimizer_race.yaml").output
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert rows["minus_x"].rstrip().endswith("0 + shared x")
    assert "Total params:         2 (in 2 tensors" in out
    assert "Trainable params:     2" in out and "Non-trainable params: 0" in out


def test_summary_has_one_row_per_written_layer_and_expands_on_request():
    short = invoke("summary", MODELS / "mnist_mlp.yaml").output
    assert "fc1.matmul" not in short
    assert any(line.startswith("fc1 ") and line.rstrip().endswith("401,920")
               for line in short.splitlines())
    assert "Total params:         535,818" in short
    expanded = invoke("summary", MODELS / "mnist_mlp.yaml", "--expand").output
    assert any(line.startswith("  fc1.matmul") and line.rstrip().endswith("(401,408)")
               for line in expanded.splitlines())


@pytest.mark.parametrize("width", [80, 120])
def test_ops_fits_the_terminal_width(width):
    out = invoke("ops", env={"COLUMNS": str(width)}).output
    assert max(len(line) for line in out.splitlines()) <= width
    assert "maxpool2d" in out and "linear (layer)" in out


def test_ops_name_shows_one_op_in_full():
    out = invoke("ops", "maxpool2d", env={"COLUMNS": "100"}).output
    assert out.startswith("maxpool2d (op): inputs x")
    assert "return_indices" in out  # past the first line of the doc
    assert "kernel (required): window size" in out
    bad = invoke("ops", "maxpol")
    assert bad.exit_code == 2 and "did you mean 'maxpool" in bad.output


# ==== 10a. the gradient check samples, boundedly ==================================================

def deep_mlp(layers: int):
    b = mg.GraphBuilder(f"tanh{layers}")
    h, t = b.input("x", ["batch", 8]), b.input("t", ["batch", 8])
    for i in range(layers):
        h = b.tanh(b.linear(h, name=f"fc{i}", out=f"z{i}", units=8), name=f"a{i}", out=f"h{i}")
    b.output(h)
    b.set_loss(b.mse(h, t, name="loss", out="L"))
    return b.build()


def test_check_samples_a_bounded_number_of_elements():
    from minigraph.api import check_model
    from minigraph.gradcheck import ALL_PARAMS, MAX_TOTAL

    calls = []
    report = check_model(deep_mlp(150), progress=lambda done, total: calls.append((done, total)))
    sampled = [r for r in report.grads if r.param != ALL_PARAMS]
    assert report.ok and len(sampled) == 300
    assert sum(r.checked for r in sampled) == MAX_TOTAL == calls[-1][0] == calls[-1][1]
    assert report.grads[-1].param == ALL_PARAMS and report.grads[-1].checked == 150 * 72
    small = check_model(XOR)
    assert all(r.checked == r.size for r in small.grads)  # small params: every element
    assert ALL_PARAMS not in [r.param for r in small.grads]


def test_check_full_perturbs_every_element_and_the_sample_is_seeded():
    from minigraph.api import check_model

    full = check_model(MODELS / "circles.yaml", full=True)
    assert all(r.checked == r.size for r in full.grads)
    a = check_model(deep_mlp(40))
    b = check_model(deep_mlp(40))
    assert [(r.checked, r.max_abs) for r in a.grads] == [(r.checked, r.max_abs) for r in b.grads]


def test_check_stays_strict_on_an_element_the_sample_skips():
    """A wrong gradient in one element of one param of many is caught by the direction."""
    from minigraph.api import check_model

    def wrong(xs, y, gy):
        g = gy * (1 - y * y)
        g = g.copy()
        g[..., 3] *= 1.01  # one unit of one layer
        return (g,)

    mg.register_op("tanh_off_t", lambda x: np.tanh(x), wrong)
    b = mg.GraphBuilder("deep_wrong")
    h, t = b.input("x", ["batch", 8]), b.input("t", ["batch", 8])
    for i in range(130):
        op = "tanh_off_t" if i == 77 else "tanh"
        h = b.node(op, [b.linear(h, name=f"fc{i}", out=f"z{i}", units=8)], name=f"a{i}",
                   out=f"h{i}")
    b.output(h)
    b.set_loss(b.mse(h, t, name="loss", out="L"))
    report = check_model(b.build())
    assert not report.ok
    result = invoke("check", MODELS / "xor.yaml", "--full")
    assert result.exit_code == 0 and "all gradients match" in result.output


# ==== 17. file -> graph -> file ===================================================================

@pytest.mark.parametrize("path", sorted(MODELS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_model_saves_back_byte_identical(path, tmp_path):
    graph = mg.load_graph(path)
    mg.save_model(graph, tmp_path / path.name)
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    mg.save_model(graph, tmp_path / "m.json")  # the other format: the dumper, same data
    mg.save_model(mg.load_graph(tmp_path / "m.json"), tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "m.json").read_bytes()
    assert mg.load_graph(tmp_path / "m.json").to_dict() == graph.to_dict()


def test_a_changed_model_is_written_by_the_dumper(tmp_path):
    graph = mg.load_graph(XOR)
    graph.spec.train["epochs"] = 5
    mg.save_model(graph, tmp_path / "x.yaml")
    text = (tmp_path / "x.yaml").read_text()
    assert "epochs: 5" in text and text != Path(XOR).read_text()


# ==== 18. checkpoint files, docs, README ==========================================================

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        mg.load(XOR).save_params(tmp_path / "p.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "p.npz").st_mode) == mode


def test_run_save_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        result = invoke("run", XOR, "--epochs", 2, "--save", tmp_path / "ck.npz", "--quiet")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(tmp_path / "ck.npz").st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary file left


def test_a_garbage_checkpoint_is_not_a_minigraph_checkpoint(tmp_path):
    (tmp_path / "junk.npz").write_bytes(os.urandom(3000))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", W1=np.array([{"a": 1}], dtype=object))
    for name in ("junk.npz", "obj.npy", "objects.npz"):
        result = invoke("run", XOR, "--epochs", 2, "--load", tmp_path / name)
        assert result.exit_code == 2
        assert "allow_pickle" not in result.output and "unsafe" not in result.output
        if name != "objects.npz":
            assert "is not a minigraph checkpoint" in result.output


def test_the_format_reference_ships_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "../shared/spec" not in readme
    assert "(docs/model-format.md)" in readme
    assert (ROOT / "docs" / "model-format.md").read_text().startswith("# The minigraph model")


def test_readme_then_try_writes_only_into_the_ignored_folder():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Then try", 1)[1].split("\n\n", 2)[1]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/out/" in ignored
    for line in block.splitlines():
        for flag in ("-o", "--log", "--save"):
            words = line.split()
            if flag in words:
                assert words[words.index(flag) + 1].startswith("out/"), line


def test_pyproject_license_is_an_spdx_string():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in text and "license = {" not in text


def test_a_long_check_shows_progress_on_a_terminal_only(tmp_path):
    """Through a real pseudo-terminal: a bar while a long check runs; none in a pipe."""
    import pty
    import select

    b = mg.GraphBuilder("deep")
    h, t = b.input("x", ["batch", 8]), b.input("t", ["batch", 8])
    for i in range(60):
        h = b.tanh(b.linear(h, name=f"fc{i}", out=f"z{i}", units=8), name=f"a{i}", out=f"h{i}")
    b.output(h)
    b.set_loss(b.mse(h, t, name="loss", out="L"))
    b.save(tmp_path / "deep.yaml")
    pid, fd = pty.fork()
    if pid == 0:  # the child: minigraph on the terminal
        os.execv(MINIGRAPH, [MINIGRAPH, "check", str(tmp_path / "deep.yaml")])
    seen = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"gradient check:" in seen and b"element" in seen and b"all gradients match" in seen
    piped = subprocess.run([MINIGRAPH, "check", str(tmp_path / "deep.yaml")],
                           capture_output=True, text=True)
    assert piped.returncode == 0 and "gradient check:" not in piped.stderr
