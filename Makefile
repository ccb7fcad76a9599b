# The course's commands. Each sets up .venv on first use (and again when the requirements change).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
EXERCISE ?= 01_tasks_and_episodes
SUBMISSIONS ?= submissions/$(EXERCISE)
OUT ?= grades/$(EXERCISE)

.PHONY: book test lab exercises grade runs clean

$(READY): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(READY)

book: $(READY)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book: $(CURDIR)/_build/html/index.html"

test: $(READY)
	MLCOURSE_QUIET=1 $(PY) -m pytest --durations=15

lab: $(READY)
	$(VENV)/bin/jupyter lab

runs: $(READY)
	$(PY) -m mlcourse runs

exercises: $(READY)
	$(PY) -m mlcourse exercises

grade: $(READY)
	$(PY) -m mlcourse grade $(SUBMISSIONS) --exercise $(EXERCISE) --out $(OUT)

clean:
	rm -rf _build .pytest_cache
