# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision come from this machine's disk (pip's cap in /etc/xdg/pip);
# the GPU hosts bring their own, hence the ranges in pyproject.toml.
TORCH := torch==2.14.1 torchvision==0.29.1
DEMO := var/demo
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install demo test test-postgres bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job on the embedded default: SQLite and a local evidence folder under var/demo.
demo: install
	rm -rf $(DEMO)
	@set -e; export VESTIGE_DATA_DIR=$(DEMO) VESTIGE_ACTOR="Demo Examiner"; V=$(BIN)/vestige; \
	run() { echo; $(BIN)/python -c 'import shlex, sys; print("$$ vestige", shlex.join(sys.argv[1:]))' "$$@"; $$V "$$@"; }; \
	$(BIN)/python -m vestige.cli.demo $(DEMO)/incoming >/dev/null; \
	run init; \
	run case new --ref DEMO-2026-0001 --title "Images from a forum thread"; \
	echo; echo "# synthetic images from two of Vestige's own reference generators (the zoo):"; \
	run zoo sample dcgan-s0 --n 2 --seed 7 --out $(DEMO)/incoming/zoo/dcgan-s0; \
	run zoo sample ddpm-ddim --n 2 --seed 7 --out $(DEMO)/incoming/zoo/ddpm-ddim; \
	run ingest DEMO-2026-0001 $(DEMO)/incoming/photos $(DEMO)/incoming/reshared $(DEMO)/incoming/upload.zip \
	    $(DEMO)/incoming/generator-metadata.png $(DEMO)/incoming/zoo --source "forum thread 118" --by "A. Examiner"; \
	echo; echo "# hostile and mislabelled files are refused, one line each, nothing written:"; \
	run ingest DEMO-2026-0001 $(DEMO)/incoming/refused --by "A. Examiner" && exit 1 || true; \
	run images DEMO-2026-0001; \
	run image show 4; \
	run custody verify DEMO-2026-0001; \
	run plugins; \
	run detect $(DEMO)/incoming/generator-metadata.png $(DEMO)/incoming/photos/astronaut.jpg; \
	echo; echo "# a worker on the embedded broker (no server), log in $(DEMO)/worker.log:"; \
	$$V worker --concurrency 2 >$(DEMO)/worker.log 2>&1 & WORKER=$$!; trap 'kill $$WORKER 2>/dev/null || true' EXIT; \
	for i in $$(seq 150); do ls $(DEMO)/workers/*.json >/dev/null 2>&1 && break; sleep 0.2; done; \
	run analyze DEMO-2026-0001 --robustness --wait; \
	kill $$WORKER; wait $$WORKER || true; \
	echo; echo "# reports, each kept as a blob and logged in the custody chain; the bundle is signed with the lab key:"; \
	run keys init; \
	for f in json html pdf; do run report DEMO-2026-0001 --format $$f --out $(DEMO)/report.$$f; done; \
	run report DEMO-2026-0001 --format bundle --out $(DEMO)/DEMO-2026-0001-evidence.zip; \
	run keys export --out $(DEMO)/lab-public-key.pem; \
	run verify $(DEMO)/DEMO-2026-0001-evidence.zip --public-key $(DEMO)/lab-public-key.pem; \
	run custody verify DEMO-2026-0001; \
	echo; echo "reports: $(DEMO)/report.html, $(DEMO)/report.pdf, $(DEMO)/report.json"; \
	echo "evidence bundle: $(DEMO)/DEMO-2026-0001-evidence.zip (check it anywhere: vestige verify BUNDLE --public-key $(DEMO)/lab-public-key.pem)"; \
	echo; echo "demo data is in $(DEMO); try: VESTIGE_DATA_DIR=$(DEMO) $(BIN)/vestige --help"

test: install
	$(BIN)/python -m pytest -q

test-postgres: install
	VESTIGE_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -q

bench: install
	$(BIN)/vestige bench ingest
	$(BIN)/vestige bench neardup

clean:
	rm -rf $(VENV) var bench-results .pytest_cache
