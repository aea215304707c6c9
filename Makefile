# vbatch — plain GNU Makefile.
#
#   make                      build build/vbatch
#   make test                 unit tests + fuzz corpus replay + e2e (scripts/test.sh)
#   make unit                 unit tests only
#   make SAN=address,undefined   sanitizer build in build-san/
#   make BUILD=build-x        use another build folder (parallel work trees)
#   make fuzz                 libFuzzer targets (clang) in $(BUILD)/fuzz/
#   make bench                benchmark programs in $(BUILD)/bench/
#   make deb                  Debian package build-deb/vbatch_<version>_<arch>.deb
#
# Each folder under src/ is a module compiled into its own static library;
# a unit test tests/unit/test_<module>[_what].c links its module and the
# module's dependencies (DEPS_<module> below), so a module can be built and
# tested without the ones above it.

ORT_DIR ?= $(HOME)/.cache/vbatch/ort
# Where the binary looks for libonnxruntime.so at run time (VBATCH_ORT_LIB
# overrides it); the Debian package points it at its own copy.
ORT_RUNTIME_DIR ?= $(ORT_DIR)
SAN ?=
ifeq ($(SAN),)
BUILD ?= build
else
BUILD ?= build-san
endif

CC ?= cc
PKGS := libmicrohttpd libcurl openssl sqlite3 libpq libarchive libturbojpeg libpng \
        libwebp libavformat libavcodec libswscale libavutil jansson freetype2 zlib zbar libqrencode
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wvla -Wformat=2 -Wwrite-strings -Wimplicit-fallthrough -Wundef \
        -Wno-format-nonliteral
OPT ?= -O2
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -pthread -Isrc \
              -I$(ORT_DIR)/include $(PKG_CFLAGS) -DVBATCH_ORT_DIR='"$(ORT_RUNTIME_DIR)"' $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lm -ldl -pthread $(LDLIBS)
ifneq ($(SAN),)
CFLAGS_ALL += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
endif

MODULES := base vision model workflow store staging jobs http api cli
DEPS_base :=
DEPS_vision := base
DEPS_model := vision base
DEPS_workflow := vision base
DEPS_store := base
DEPS_staging := store vision base
DEPS_jobs := staging workflow model store vision base
DEPS_http := base
DEPS_api := http jobs staging workflow model store vision base
DEPS_cli := base

mod_srcs = $(wildcard src/$(1)/*.c src/$(1)/*/*.c)
mod_lib = $(BUILD)/lib$(1).a
all_objs := $(foreach m,$(MODULES),$(patsubst src/%.c,$(BUILD)/obj/%.o,$(call mod_srcs,$(m))))

.PHONY: all test unit e2e fuzz bench clean deps deb
all: $(BUILD)/vbatch

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

define mod_rule
$(call mod_lib,$(1)): $(patsubst src/%.c,$(BUILD)/obj/%.o,$(call mod_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	ar rcs $$@ $$^ $$(if $$^,,$(BUILD)/empty.o)
endef
$(foreach m,$(MODULES),$(eval $(call mod_rule,$(m))))

# An empty module still gets an archive so that links do not fail.
$(BUILD)/empty.o:
	@mkdir -p $(BUILD)
	echo 'typedef int vbatch_empty_tu;' | $(CC) -x c -c - -o $@
$(foreach m,$(MODULES),$(if $(call mod_srcs,$(m)),,$(eval $(call mod_lib,$(m)): $(BUILD)/empty.o)))

ALL_LIBS := $(foreach m,$(MODULES),$(call mod_lib,$(m)))
LINK_GROUP = -Wl,--start-group $(1) -Wl,--end-group

$(BUILD)/vbatch: $(BUILD)/obj/main.o $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(call LINK_GROUP,$(ALL_LIBS)) $(LDLIBS_ALL)

# Unit tests: tests/unit/test_<module>[_what].c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
test_mod = $(word 2,$(subst _, ,$(notdir $(1))))
test_libs = $(foreach m,$(call test_mod,$(1)) $(DEPS_$(call test_mod,$(1))),$(call mod_lib,$(m)))

define unit_rule
$(BUILD)/tests/$(1): tests/unit/$(1).c tests/unit/t.h $(call test_libs,$(1))
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -MMD -MP $(LDFLAGS) -o $$@ $$< $(call LINK_GROUP,$(call test_libs,$(1))) $(LDLIBS_ALL)
endef
$(foreach t,$(notdir $(basename $(UNIT_SRCS))),$(eval $(call unit_rule,$(t))))

unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

# Fuzz targets: tests/fuzz/fuzz_<module>_<what>.c define LLVMFuzzerTestOneInput.
# The replay build (any compiler) runs every file of tests/fuzz/corpus/<name>/
# through the target; `make fuzz` builds real libFuzzer binaries with clang.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/replay_%,$(FUZZ_SRCS))
define fuzz_rule
$(BUILD)/tests/replay_$(1): tests/fuzz/$(1).c tests/fuzz/replay.c $(call test_libs,$(1))
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $$@ tests/fuzz/$(1).c tests/fuzz/replay.c $(call LINK_GROUP,$(call test_libs,$(1))) $(LDLIBS_ALL)
$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(foreach m,$(call test_mod,$(1)) $(DEPS_$(call test_mod,$(1))),$(call mod_srcs,$(m)))
	@mkdir -p $$(dir $$@)
	clang $(filter-out -fsanitize=%,$(CFLAGS_ALL)) -O1 -fsanitize=address,undefined,fuzzer -fno-sanitize-recover=all -o $$@ $$^ $(LDLIBS_ALL)
endef
$(foreach t,$(notdir $(basename $(FUZZ_SRCS))),$(eval $(call fuzz_rule,$(t))))
fuzz: $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

# Benchmarks: bench/bench_<module>_<what>.c, linked like unit tests.
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
define bench_rule
$(BUILD)/bench/$(1): bench/$(1).c $(call test_libs,$(1))
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $$@ $$< $(call LINK_GROUP,$(call test_libs,$(1))) $(LDLIBS_ALL)
endef
$(foreach t,$(notdir $(basename $(BENCH_SRCS))),$(eval $(call bench_rule,$(t))))
bench: $(BENCH_BINS) $(BUILD)/vbatch

test: $(BUILD)/vbatch $(UNIT_BINS) $(FUZZ_REPLAY)
	BUILD=$(BUILD) scripts/test.sh

deps:
	scripts/install-deps.sh

# The Debian package: a release build whose ONNX Runtime path is the
# package's own copy, the systemd units and the default environment file
# from deploy/ (scripts/make-deb.sh says what goes where).
deb:
	$(MAKE) BUILD=build-deb SAN= ORT_RUNTIME_DIR=/usr/lib/vbatch/ort build-deb/vbatch
	scripts/make-deb.sh build-deb

clean:
	rm -rf build build-san build-fuzz build-deb

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
