# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench torch clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,mpi,onnx]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/minigraph run models/xor.yaml

test: $(STAMP)
	$(BIN)/lint-imports
	MINIGRAPH_DATA=$${MINIGRAPH_DATA:-$(CURDIR)/../shared/datasets/mnist} $(BIN)/python -m pytest -q

# Optional PyTorch oracle for parity tests and benchmarks (a CPU build).
torch: $(STAMP)
	$(BIN)/pip install -q "torch==2.13.0"

bench: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
