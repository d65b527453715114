# ragd - top-level entry points. Everything goes through CMake; these targets only
# set up the machine, pick build directories and chain the steps.
#
#   make run        set up, build, then run the main job (scripts/run.sh)
#   make test       set up, build and run the whole suite twice: normal, then ASan+UBSan
#   make build      release build in build/
#   make format     clang-format in place;  make format-check  fails on unformatted code
#   make fuzz       build the libFuzzer targets with clang in build-fuzz/ and run each briefly
#   make bench-*    benchmarks (see docs/PERFORMANCE.md)

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
CMAKE_FLAGS ?=
ifeq ($(RAGD_CUDA),OFF)
CMAKE_FLAGS += -DRAGD_CUDA=OFF
endif

.PHONY: all setup build build-asan test test-normal test-asan fuzz run format format-check clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The sanitizer build skips CUDA (host-only tests) and -march=native stays on.
build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRAGD_SANITIZE=ON -DRAGD_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-normal: build
	@echo "=== test suite (release build) ==="
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@echo "=== test suite (ASan + UBSan build) ==="
	@cd $(ASAN_BUILD) && RAGD_SANITIZED=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (tests/fuzz/), clang + ASan + UBSan, FUZZ_SECONDS each.
fuzz: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRAGD_FUZZ=ON -DRAGD_TESTS=OFF -DRAGD_CUDA=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@echo "=== fuzzers ($(FUZZ_SECONDS)s each) ==="
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: format-check test-normal test-asan fuzz

run: build
	@bash scripts/run.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

format-check:
	@out=$$(git ls-files '*.c' '*.h' '*.cu' | xargs -r clang-format --dry-run 2>&1 | grep -c "warning:" ); \
	 if [ "$$out" != "0" ]; then echo "format-check: $$out lines need clang-format (run 'make format')"; \
	   git ls-files '*.c' '*.h' '*.cu' | xargs -r clang-format --dry-run 2>&1 | grep "warning:" | head -20; exit 1; fi; \
	 echo "format-check: ok"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
