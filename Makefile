# `make serve` and `make test` set everything up themselves in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test test-all kernels bench clean

$(STAMP): pyproject.toml requirements-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-cpu.txt
	$(BIN)/pip install --quiet -e '.[serve,eval,dev]'
	touch $(STAMP)

# The native decode kernels (minimax2/model/csrc), compiled once per machine with its C++ compiler and
# cached in ~/.cache/torch_extensions, shared by every checkout and install of the same sources (see
# minimax2/model/kernel_build.py); where they cannot be built it says why in one line and uses torch's ops.
# MINIMAX2_CPU_KERNELS=0 skips them.
kernels: $(STAMP)
	@$(BIN)/python -c "from minimax2.model import cpu_kernels; cpu_kernels.load()"

# The bundled demo model when this checkout has it; otherwise a random tiny M2-shaped checkpoint.
serve: kernels
	@if [ -f minimax2/assets/demo/config.json ]; then $(BIN)/minimax2 serve $(ARGS); else \
	  test -f checkpoints/random-tiny/config.json || $(BIN)/minimax2 init --out checkpoints/random-tiny; \
	  $(BIN)/minimax2 serve --model checkpoints/random-tiny $(ARGS); fi

test: kernels
	$(BIN)/python -m pytest -q $(ARGS)

test-all: kernels
	$(BIN)/python -m pytest -q -m '' $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
