# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DJANGO_SETTINGS_MODULE := config.settings

# The tests run against the real PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/smartsurvey
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install install-dev demo run worker test lint typecheck bench bench-web bench-frame \
        bench-draw bench-mail bench-estimates bench-coverage bench-dashboard bench-export \
        bench-letters bench-pages bench-load bench-templates bench-imputation bench-prn bench-edits \
        bench-change \
        messages fonts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python fonts
	$(BIN)/pip install --quiet -r requirements.txt
	npm ci --no-audit --no-fund --loglevel=error

install-dev: $(BIN)/python fonts
	$(BIN)/pip install --quiet -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error

# The printed letters need a Korean TrueType font: Debian's fonts-nanum, installed when this
# runs as root on Debian; otherwise say what to install (or set LETTER_FONT).
NANUM := /usr/share/fonts/truetype/nanum/NanumGothic.ttf
fonts:
	@if [ ! -f $(NANUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's fonts-nanum for the printed letters"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-nanum >/dev/null \
	      || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-nanum >/dev/null); \
	  else \
	    echo "Note: the printed letters need a Korean font: sudo apt-get install fonts-nanum (or set LETTER_FONT)"; \
	  fi; \
	fi

# Installs everything, migrates, loads realistic demo data and starts the server
# (and a Celery worker when REDIS_URL is set).
demo: install
	DEBUG=1 $(BIN)/python manage.py migrate --no-input -v0
	DEBUG=1 $(BIN)/python manage.py demo
	@if [ -n "$$REDIS_URL" ]; then \
	  DEBUG=1 $(BIN)/celery -A config worker -B -l warning --concurrency 2 & \
	fi; \
	DEBUG=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

run:
	DEBUG=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

worker:
	$(BIN)/celery -A config worker -B -l info --concurrency 2

# Lint, the import contracts (pyproject.toml), types, migrations check and the whole suite (browser, worker and SMTP tests
# included) against PostgreSQL and Redis.
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/mypy .
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python manage.py makemigrations --check --dry-run -v0
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest -q -n 2

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck:
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/mypy .

# Korean catalogue: every string of Python code, Django templates and Jinja2 templates.
messages:
	$(BIN)/python manage.py makemessages -l ko -e html,txt,py,jinja --no-obsolete \
	  --ignore=.venv --ignore=node_modules --ignore=var --ignore=tests --ignore=bench
	$(BIN)/python manage.py compilemessages -l ko --ignore=.venv

BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/smartsurvey_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/14

bench: bench-web bench-frame bench-draw bench-mail bench-estimates bench-dashboard bench-export \
       bench-letters bench-pages bench-templates bench-imputation bench-prn bench-edits bench-change

bench-web: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python bench/bench_web.py

# Why the firm's pages use Jinja2 and the staff pages Django templates: the same page in both.
bench-templates: install-dev
	$(BIN)/python bench/bench_templates.py

bench-frame: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_frame_import.py --format csv
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_frame_import.py --format xlsx

bench-draw: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_draw.py

# Donor and ratio imputation of 5,000 responses, scores, percentiles over the 163,273-firm
# frame, error localisation; no database. BANFF_PYTHON=<a Python with banff> adds Banff's
# DONORIMP and ERRORLOC on the same records (docs/banff-evaluation.md).
bench-imputation: install-dev
	$(BIN)/python bench/bench_imputation.py $(if $(BANFF_PYTHON),--banff $(BANFF_PYTHON))

bench-estimates: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_estimates.py

# Monte Carlo coverage of the 95 % intervals (Taylor, jackknife, bootstrap) over 1,000 samples
# of a synthetic population; no database. A few minutes on 2 cores.
bench-coverage: install-dev
	$(BIN)/python bench/bench_coverage.py --samples 1000

# The second survey's engine: a PRN coordinated draw of 5,000 from 163,273 firms, a rotated
# draw a year later, expected overlaps and estimates of change; no database.
bench-prn: install-dev
	$(BIN)/python bench/bench_prn.py

# Estimates of change on two rounds of 5,000 respondents: computed, the pages, the panel file.
bench-change: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_change.py

bench-dashboard: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_dashboard.py

bench-export: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_export.py

bench-letters: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_letters.py

# Every staff page, slowest first, at 5,000 cases and a census of 163,273: on the embedded
# SQLite a newcomer runs (in var/bench/), then on PostgreSQL.
bench-pages: install-dev
	DATABASE_URL= VAR_DIR=$(CURDIR)/var/bench $(BIN)/python bench/bench_pages.py
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_pages.py

# Edit rules: 5,000 responses against 30 rules and the frame's class statistics, under 2 s.
bench-edits: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_edits.py

bench-mail: install-dev
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/bench_mail.py

# Its own database and Redis: the worker's sweeps would otherwise touch other benchmarks.
bench-load: install-dev
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/load_bench REDIS_URL=redis://127.0.0.1:6379/12 \
	  $(BIN)/python bench/bench_load.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
