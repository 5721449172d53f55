# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean browser

setup: $(STAMP)

# torch is pinned here (the CPU wheel this machine carries); pyproject keeps a range.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-cache-dir --upgrade pip
	$(BIN)/pip install -q --no-cache-dir torch==2.13.0
	$(BIN)/pip install -q --no-cache-dir -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/speechlm run gslm --out runs/demo

# Two pytest workers (tests/conftest.py gives each its share of the cores): the suite is half
# single-threaded work (subprocess start-up, espeak, small tensors), so this is ~1.4x faster.
TEST_WORKERS ?= 2
test: setup browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The page's test drives Debian's chromium through its chromedriver (`make demo` needs neither):
# installed when missing, as root or with password-less sudo; otherwise that test is skipped.
APT := DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null; then \
		echo "no apt-get: install chromium and its chromedriver to run the browser test"; \
	elif [ "$$(id -u)" = 0 ]; then \
		($(APT) update -qq && $(APT) install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		(sudo $(APT) update -qq && sudo $(APT) install -y -qq chromium chromium-driver \
		>/dev/null) || echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "chromium + chromium-driver missing, no root or sudo: browser test skipped"; fi

lint: setup
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs
