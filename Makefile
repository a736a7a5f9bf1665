# The two set-up commands of the README: `make demo` and `make test`.
# Both bootstrap first (Debian packages when root, .venv with the pinned dependencies).
PY := .venv/bin/python
OUT ?= out

.PHONY: bootstrap demo test lint bench clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@$(PY) -m emcgen.demo --out $(OUT)

test: bootstrap
	$(PY) -m ruff check emcgen tests benchmarks examples
	$(PY) -m pytest -q

lint: bootstrap
	$(PY) -m ruff check emcgen tests benchmarks examples

# Measurements for BENCHMARKS.md (minutes; needs ../shared). Paste the printed tables there.
bench: bootstrap
	$(PY) benchmarks/float_interpreter.py
	$(PY) benchmarks/k210_bench.py
	$(PY) benchmarks/stm32_bench.py

clean:
	rm -rf $(OUT) build .pytest_cache
