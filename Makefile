# eAuth — two commands: `make up` and `make test`. Everything else here is what they call.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
export EAUTH_HOME ?= $(CURDIR)/var
DEB_PACKAGES := softhsm2 opensc openssl poppler-utils chromium fonts-noto-cjk libnss3-tools nginx-light apache2-utils
UV_VERSION := 0.13.9

.PHONY: up test test-fast install deps venv lint bench clean

up: install
	$(VENV)/bin/eauth init
	$(VENV)/bin/eauth serve --host 127.0.0.1 --port 8000

test: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## Local convenience: skip the slow load/browser tests (CI always runs everything).
test-fast: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

install: deps $(VENV)/.installed

## Debian packages: installed only when one is missing, so a second run is a no-op.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip sync -q --python $(VENV)/bin/python requirements.lock
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps -e .
	touch $@

## Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra test -o requirements.lock --python-version 3.11

bench: install
	$(VENV)/bin/python -m bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache
