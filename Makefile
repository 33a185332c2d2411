# Two commands on a fresh machine: `make demo` and `make test`. Everything else hangs off them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEMO_FRAMES ?= 300

.PHONY: demo test lint typecheck unit sysdeps wheel bench clean

# On Raspberry Pi OS picamera2 comes from apt (python3-picamera2) into the system Python, which a
# plain venv cannot see: where $(PYTHON) can import it, the venv sees the system's packages
# (--system-site-packages) and says so. Its compiled parts (simplejpeg) are built against the
# system's numpy 1.x, which a pip-installed numpy 2 (newer OpenCV wheels require it) would hide:
# the venv's pip.conf pins numpy to the system's version, so pip picks an OpenCV that accepts it.
# Elsewhere a plain venv.
SYSTEM_HAS_PICAMERA2 := import importlib.util, sys; sys.exit(importlib.util.find_spec("picamera2") is None)
SYSTEM_NUMPY := import importlib.metadata as m; print(m.version("numpy"))
$(PY):
	@if $(PYTHON) -c '$(SYSTEM_HAS_PICAMERA2)' 2>/dev/null; then \
	  echo "$(PYTHON) has picamera2 (python3-picamera2): creating $(VENV) with --system-site-packages so the venv can use the CSI camera"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV) || exit 1; \
	  numpy=$$($(PYTHON) -c '$(SYSTEM_NUMPY)' 2>/dev/null); \
	  if [ -n "$$numpy" ]; then \
	    echo "numpy==$$numpy" > $(VENV)/system-numpy.txt; \
	    printf '[global]\nconstraint = %s\n' "$$(cd $(VENV) && pwd)/system-numpy.txt" > $(VENV)/pip.conf; \
	    echo "$(VENV)/pip.conf keeps the system's numpy $$numpy (picamera2's compiled parts are built against it)"; \
	  fi; \
	else \
	  $(PYTHON) -m venv $(VENV); \
	fi

# Runtime only: numpy, OpenCV, pyserial, ai-edge-litert (no TensorFlow).
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Dev extras: the test tools, the TFLite Micro interpreter, TensorFlow for building models and
# esptool (the `flash` extra) for edge-flash's ESP32 paths, and paho-mqtt for the MQTT sink.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev,mcu,build,flash,mqtt]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(VENV)/bin/edge-run --board host --camera demo --max-frames $(DEMO_FRAMES)

# System tools the tests use for real: the ARM cross compiler and newlib (firmware builds),
# g++ with multilib (host and -m32 TFLM builds),
# socat (linked ptys), mosquitto (a real MQTT broker), chromium + chromium-driver (the
# preview in a real browser), and without their recommends qemu-system-arm (Cortex-M under
# emulation), mmdebstrap and qemu-user-static (an arm64 Debian bookworm Python run as a Pi 4 and
# a Pi 5, tests/test_aarch64.py; qemu-aarch64-static -L needs no binfmt_misc registration).
# Installed with apt when missing and root; a failed apt fails.
SYSDEPS_CMDS := arm-none-eabi-g++:gcc-arm-none-eabi,libnewlib-arm-none-eabi,libstdc++-arm-none-eabi-newlib \
  socat:socat g++:g++ mosquitto:mosquitto chromium:chromium chromedriver:chromium-driver
SYSDEPS_BARE_CMDS := qemu-system-arm:qemu-system-arm mmdebstrap:mmdebstrap \
  qemu-aarch64-static:qemu-user-static
sysdeps:
	@missing=""; \
	for pair in $(SYSDEPS_CMDS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $$(echo $${pair#*:} | tr , ' ')"; \
	done; \
	echo 'int main(void){return 0;}' | g++ -m32 -x c++ - -o /dev/null 2>/dev/null || missing="$$missing g++-multilib"; \
	for pair in $(SYSDEPS_BARE_CMDS); do \
	  command -v "$${pair%%:*}" >/dev/null || bare="$$bare $${pair#*:}"; \
	done; \
	if [ -n "$$missing$$bare" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing $$bare"; \
	    apt-get update -qq || exit 1; \
	    if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; fi; \
	    if [ -n "$$bare" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$bare >/dev/null || exit 1; fi; \
	  elif [ -n "$$CI" ] && [ "$$CI" != false ]; then \
	    echo "error: missing$$missing $$bare and cannot install them (not root or no apt)"; exit 1; \
	  else \
	    echo "warning: missing$$missing $$bare (install them; the tests that need them will skip)"; \
	  fi; \
	fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

# The suite in TEST_WORKERS processes (pytest-xdist; auto = one per core), whole test files per
# worker (--dist loadfile), so a module's fixtures are built once; the slowest files go first,
# in tests/conftest.py's order (--no-loadscope-reorder keeps it). TEST_WORKERS=0: one process.
# The 25 slowest steps are listed at the end, so a CI log shows where the time went.
TEST_WORKERS ?= auto
unit: $(VENV)/.installed-dev sysdeps
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=25

test: lint typecheck unit

wheel: $(VENV)/.installed-dev
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

bench: $(VENV)/.installed-dev
	for b in tools/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
