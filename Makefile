# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/paperwire demo

# The suite once per database: SQLite, then (PAPERWIRE_TEST_DB set) the tests that use a database
# again on PostgreSQL, each on its own new database (tests/databases.py).
test: install
	$(BIN)/python -m pytest
	@if [ -n "$$PAPERWIRE_TEST_DB" ]; then $(BIN)/python -m pytest --db-backend=postgresql; \
	else echo "PostgreSQL half skipped: PAPERWIRE_TEST_DB is not set (a PostgreSQL server URL; see README, Development)"; fi

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/match.py --repeat 3
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/plan.py --readers 20000
	$(BIN)/python bench/render.py --readers 100000
	@if command -v smtp-sink >/dev/null || [ -x /usr/sbin/smtp-sink ]; then $(BIN)/python bench/send.py; \
	else echo "bench/send.py skipped: needs Postfix's smtp-sink (apt-get install postfix)"; fi

clean:
	rm -rf $(VENV) out/*.sqlite3* out/digests out/feeds
