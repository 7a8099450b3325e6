"""A seeded fuzzer over the curriculum's model files, run through the CLI in-process.

Each variant (truncation, byte damage, type confusion of a value, near-miss key renames, huge
numbers, alias bombs, deep nesting, NUL/BOM/tabs/control characters, long strings ...) must end
with exit 0 (accepted), 2 (refused: one line, located when it is about the file's content) or
1 only for a run that failed on its own terms (a NaN loss, a gradient mismatch); never a
traceback, and within bounded time and memory.  The seed is fixed, so a failure repeats;
``MINIGRAPH_FUZZ_SEED`` and ``MINIGRAPH_FUZZ_CASES`` explore further.
"""
from __future__ import annotations

import json
import os
import random
import re
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from minigraph.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["xor.yaml", "or_perceptron.yaml", "chain_rule.yaml", "backprop_basics.yaml",
         "circles.yaml", "linear_regression.yaml", "xor_handset.yaml", "noisy_line.yaml",
         "polynomial_regression.yaml", "xor_wide_deep.yaml", "multivariable_regression.yaml"]
SEED = int(os.environ.get("MINIGRAPH_FUZZ_SEED", "20240607"))
CASES = int(os.environ.get("MINIGRAPH_FUZZ_CASES", "160"))
MAX_SECONDS = 3.0
MAX_PEAK_MB = 200

HOSTILE_VALUES = [None, True, False, 0, -1, 1, 2, 300.5, -0.01, 10 ** 29, 2 ** 31, 2 ** 62,
                  1e308, -1e308, float("nan"), float("inf"), "", "x" * 20000, "sigmoyd",
                  "adamw", "acc", "\x1b[31m", "a<b>&\"c", [], {}, [[]], [["accuracy"]],
                  {"type": "sgd"}, [1, 2, 3], [100000, 100000], {"uniform": {"low": "nan"}},
                  "\ud800"]


def near_miss(key: str, rng: random.Random) -> str:
    if len(key) < 2:
        return key + "s"
    i = rng.randrange(len(key) - 1)
    choice = rng.randrange(3)
    if choice == 0:  # swap two letters
        return key[:i] + key[i + 1] + key[i] + key[i + 2:]
    if choice == 1:  # drop one
        return key[:i] + key[i + 1:]
    return key[:i] + rng.choice("aeioustx") + key[i:]  # add one


def paths(data, prefix=()):
    """Every (path, value) in the tree."""
    out = [(prefix, data)]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, prefix + (i,))
    return out


def structural(data, rng: random.Random):
    """Change one value or key of the tree (type confusion, renames, deletions, sizes)."""
    path, _ = rng.choice(paths(data)[1:])
    parent = data
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    what = rng.randrange(4)
    if what == 0 and isinstance(parent, dict):  # near-miss rename of the key
        value = parent.pop(last)
        parent[near_miss(str(last), rng)] = value
    elif what == 1:  # delete
        del parent[last]
    else:  # replace by a hostile value
        parent[last] = rng.choice(HOSTILE_VALUES)
    return data


def dump(data, fmt):
    if fmt == "json":
        return json.dumps(data, allow_nan=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False)


def textual(text: str, rng: random.Random) -> bytes:
    """Damage the text or its bytes."""
    raw = text.encode("utf-8", errors="surrogatepass")
    pos = rng.randrange(max(len(raw), 1))
    kind = rng.randrange(12)
    if kind == 0:
        return raw[:pos]  # truncation
    if kind == 1:
        return raw[:pos] + bytes([rng.randrange(256)]) + raw[pos + 1:]  # one byte
    if kind == 2:
        return raw[:pos] + rng.choice([b"\x00", b"\x1b", b"\t", b"\xff", b"\xc3", b"\r"]) + raw[pos:]
    if kind == 3:
        return b"\xef\xbb\xbf" + raw  # a BOM: accepted
    if kind == 4:
        return raw.replace(b"  ", b"\t", 1)
    if kind == 5:  # billion laughs
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
        return raw + ("\n" + "\n".join(lines) + "\n").encode()
    if kind == 6:
        return raw + b"\nrec: &r [*r]\n"
    if kind == 7:
        n = rng.choice([100, 1000, 5000])
        return raw + b"\ndeep: " + b"[" * n + b"]" * n + b"\n"
    if kind == 8:
        return raw + b"\nbig: " + b"9" * rng.choice([31, 5000]) + b"\n"
    if kind == 9:  # a huge number where a number is
        return re.sub(rb"(?<=[ \[])\d+(?=[,\]}\n])", b"9" * rng.choice([12, 40, 5000]), raw,
                      count=1)
    if kind == 10:  # duplicate a line
        lines = raw.split(b"\n")
        i = rng.randrange(len(lines))
        return b"\n".join(lines[:i + 1] + lines[i:])
    return raw.replace(b"\n", b"\n" * rng.randrange(1, 3), 1)[:pos] + b"\"\\ud800\"\n"


def variants():
    rng = random.Random(SEED)
    sources = [(name, (ROOT / "models" / name).read_text()) for name in SMALL]
    out = []
    for i in range(CASES):
        name, text = sources[i % len(sources)]
        fmt = "json" if rng.random() < 0.25 else "yaml"
        data = yaml.safe_load(text)
        if rng.random() < 0.5:
            for _ in range(rng.randrange(1, 3)):
                data = structural(data, rng)
            raw = dump(data, fmt).encode("utf-8", errors="surrogatepass")
        else:
            raw = textual(dump(data, fmt), rng)
        out.append((f"{i:03d}-{name[:-5]}.{fmt}", raw))
    return out


def run_cli(args):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, seconds, peak


VARIANTS = variants()


def test_the_fuzzer_makes_varied_cases():
    assert len(VARIANTS) >= 100
    assert len({raw for _, raw in VARIANTS}) > 0.9 * len(VARIANTS)


@pytest.mark.parametrize("chunk", range(4))
def test_hostile_variants_end_cleanly(tmp_path, chunk):
    problems = []
    for name, raw in VARIANTS[chunk::4]:
        path = tmp_path / name
        path.write_bytes(raw)
        for args in (["check", path], ["run", path, "--epochs", "1", "--quiet"]):
            result, seconds, peak = run_cli(args)
            output = result.output
            why = None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                why = f"raised {type(result.exception).__name__}: {result.exception!r}"[:300]
            elif "Traceback" in output:
                why = "printed a traceback"
            elif result.exit_code not in (0, 1, 2):
                why = f"exit {result.exit_code}"
            elif result.exit_code == 1 and not re.search(
                    r"loss became|gradient check failed", output):
                why = "exit 1 for something that is not a failed run"
            elif result.exit_code == 2:
                last = output.strip().splitlines()[-1] if output.strip() else ""
                if last.startswith(str(path)) and not re.match(
                        re.escape(str(path)) + r":\d+:\d+: ", last):
                    why = "a message about the file without LINE:COL"
                elif not last.startswith(str(path)) and not last.startswith(("error:", "Usage",
                                                                             "Error")):
                    why = "an unexpected message"
            if seconds > MAX_SECONDS:
                why = f"took {seconds:.1f} s"
            if peak > MAX_PEAK_MB:
                why = f"allocated {peak:.0f} MB"
            if why:
                problems.append(f"{name} {args[0]}: {why}\n    {output.strip()[-300:]!r}")
    assert not problems, "\n".join(problems)


# ==== property: the loader only ever raises ModelError ===========================================

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    given = None

if given is not None:
    from minigraph.errors import ModelError
    from minigraph.graph import build_graph
    from minigraph.loader import parse_text
    from minigraph.spec import parse_spec

    XOR_TEXT = (ROOT / "models" / "xor.yaml").read_text()
    PIECES = st.sampled_from(["[", "]", "{", "}", ":", ", ", "\n", "  ", "- ", "&a ", "*a",
                              "!!int ", "!!bool ", "!!float ", "\"\\ud800\"", "\x00", "\t",
                              "9" * 40, "1.0e+400", ".nan", "null", "op", "name", "\ufeff"])

    @settings(max_examples=150, deadline=2000, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(XOR_TEXT)), st.lists(PIECES | st.text(max_size=8), max_size=6),
           st.sampled_from(["m.yaml", "m.json"]))
    def test_any_splice_of_a_model_loads_or_raises_a_located_model_error(pos, pieces, file):
        text = XOR_TEXT[:pos] + "".join(pieces) + XOR_TEXT[pos:]
        try:
            build_graph(parse_spec(parse_text(text, file)))
        except ModelError as exc:
            assert re.match(r"m\.(yaml|json):\d+:\d+: ", str(exc)), str(exc)
