# Thin wrapper around meson/ninja. Every target installs what it needs first (scripts/install-deps).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
MESON_SETUP = meson setup --wrap-mode=nodownload

.PHONY: all build deps check demo bench fuzz format format-check clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: | deps
	$(MESON_SETUP) $(BUILD) -Dbuildtype=release

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j$(JOBS)

# Unit tests (cmocka), integration tests (pytest) and fuzz smoke runs on an ASan+UBSan build;
# ends with "N passed, N failed".
check: deps
	@scripts/check

demo: build
	@scripts/demo $(BUILD)

bench: build
	@bench/run $(BUILD)

fuzz: deps
	@scripts/fuzz $(BUILD_FUZZ) $(or $(FUZZ_SECONDS),60)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
