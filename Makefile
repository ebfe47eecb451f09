# The two commands of the README. Each one creates .venv (Python 3.11) and installs what it
# needs on first use (scripts/setup.sh); later runs start in seconds.
PY := .venv/bin/python

.PHONY: demo test setup lint clean

demo: setup
	$(PY) -m nmcompile.cli demo $(ARGS)

test: setup
	$(PY) -m ruff check nmcompile backends tests benchmarks examples
	$(PY) -m pytest $(ARGS)

setup:
	@bash scripts/setup.sh

lint: setup
	$(PY) -m ruff check nmcompile backends tests benchmarks examples

clean:
	rm -rf .venv nmcompile-demo .pytest_cache
