# Two commands on a fresh machine: `make demo` and `make test`. Everything else hangs off them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEMO_FRAMES ?= 300

.PHONY: demo test lint typecheck unit sysdeps wheel bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime only: numpy, OpenCV, pyserial, ai-edge-litert (no TensorFlow).
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Dev extras: the test tools, the TFLite Micro interpreter and TensorFlow for building models.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev,mcu,build]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(VENV)/bin/edge-run --board host --camera demo --max-frames $(DEMO_FRAMES)

# System tools the tests use for real: the ARM cross compiler (link checks of generated
# firmware) and socat (linked ptys for serial tests). Installed with apt when missing and root.
sysdeps:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing="$$missing gcc-arm-none-eabi libnewlib-arm-none-eabi"; \
	command -v socat >/dev/null || missing="$$missing socat"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing$$missing (install them; the tests that need them will skip)"; \
	  fi; \
	fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

unit: $(VENV)/.installed-dev sysdeps
	$(VENV)/bin/pytest -q

test: lint typecheck unit

wheel: $(VENV)/.installed-dev
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

bench: $(VENV)/.installed-dev
	for b in tools/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
