# The README's first two commands are `make demo` and `make test`; both bootstrap a fresh
# machine (apt when root, a local .venv, pip install) before they run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the tests and demo use when present (tc/ip for humans, procps for sysctl).
# The provisioning tests build a Debian root (debootstrap), boot it (qemu, busybox initramfs,
# e2fsprogs for the image) and validate the Vagrantfile; check mode's apt module needs python3-apt.
APT_PKGS := iproute2 procps kmod ethtool debootstrap qemu-system-x86 busybox-static e2fsprogs \
            vagrant vagrant-libvirt python3-apt python3-venv

.PHONY: demo test lint bench check clean

$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: the two-host feeder demo (veth topology as root, loopback otherwise).
demo: $(STAMP)
	$(BIN)/feeder demo

check: $(STAMP)
	$(BIN)/hosttune check

lint: $(STAMP)
	$(BIN)/ruff check hosttune feeder xdp tests $(wildcard bench)
	$(BIN)/ruff format --check hosttune feeder xdp tests $(wildcard bench)
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest

# Every benchmark, bounded (about 5 minutes); QUICK=1 for a short pass.
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) build *.egg-info
