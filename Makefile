# Two commands do all the set-up on a fresh Debian machine:
#   make demo   the toy problem end to end (wpgdkit demo), then label metrics from the machine's data
#   make test   create the environment, install everything the tests need, run them
# Both install the Debian data packages (WordNet 3.0, Fashion-MNIST) and a
# virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEB_PACKAGES := wordnet-base wordnet-sense-index dataset-fashion-mnist
# torch from this pinned pair is served from local disk on the project's machines.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= wpgdkit-demo
PYTEST_ARGS ?=

.PHONY: demo test deb-deps venv metrics bench clean

deb-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian packages:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y --no-install-recommends $$missing \
	    || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; }; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test: deb-deps venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: deb-deps venv
	@mkdir -p $(DEMO_DIR)
	$(BIN)/wpgdkit demo --out $(DEMO_DIR)
	$(BIN)/wpgdkit metric build --dataset cifar10 --source wordnet --out $(DEMO_DIR)/cifar10-wordnet.csv
	$(BIN)/wpgdkit metric check $(DEMO_DIR)/cifar10-wordnet.csv --p 2.5
	$(BIN)/wpgdkit metric show $(DEMO_DIR)/cifar10-wordnet.csv --plot $(DEMO_DIR)/cifar10-wordnet.png
	$(BIN)/wpgdkit metric build --dataset fashion-mnist --source linear --limit 10000 --out $(DEMO_DIR)/fashion-mnist-linear.csv
	$(BIN)/wpgdkit metric build --dataset fashion-mnist --source wordnet --out $(DEMO_DIR)/fashion-mnist-wordnet.csv
	$(BIN)/wpgdkit metric compare $(DEMO_DIR)/fashion-mnist-wordnet.csv $(DEMO_DIR)/fashion-mnist-linear.csv
	$(BIN)/wpgdkit metric show $(DEMO_DIR)/fashion-mnist-linear.csv --plot $(DEMO_DIR)/fashion-mnist-linear.png
	@echo "demo files in $(DEMO_DIR)/"

# Rebuild the shipped metrics/ and their manifest (needs WordNet and Fashion-MNIST).
metrics: deb-deps venv
	$(BIN)/python -m wpgdkit.labelmetric.shipped

# The long benchmarks (full sizes, one torch thread); wpgdkit bench --help lists them all.
bench: deb-deps venv
	$(BIN)/wpgdkit bench --only wordnet,attack-step,train-loop,audit --threads 1

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
