# lmtune: `make` builds build/lmtune; `make check` runs the whole test suite; `make demo` runs the demo.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= 2
CMAKE_GEN  := cmake -S . -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps venv build asan check check-unit check-asan check-interop demo base-model fixtures bench clean data

all: build

deps:
	@bash scripts/setup.sh

venv:
	@bash scripts/setup.sh --venv

build: deps
	@$(CMAKE_GEN) -B $(BUILD) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@$(CMAKE_GEN) -B $(BUILD_ASAN) -DLT_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

check-unit: build
	@cd $(BUILD) && ctest --output-on-failure

check-asan: asan
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure

data:
	@bash scripts/fetch-data.sh

check-interop: build venv data
	@LMTUNE_BIN=$(CURDIR)/$(BUILD)/lmtune OMP_NUM_THREADS=2 .venv/bin/python -m pytest -q tests/interop

check: check-unit check-asan check-interop
	@echo "make check: all suites passed"

demo: build
	@bash scripts/demo.sh

# Re-create the bundled base model models/lmtune-tiny from public-domain text (~30 min on 2 cores).
base-model: build
	@bash scripts/base-model.sh

fixtures: venv
	@.venv/bin/python tests/fixtures/make_fixtures.py

bench: build venv
	@bash bench/run.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
