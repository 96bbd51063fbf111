# patchgrid — build, test, bench.
#
#   make demo            build, run the demo sweep on all local cores, print its report
#   make                 build build/<mode>/patchgrid (installs missing Debian packages first)
#   make test            unit, reference (PyTorch), tokenizer, MPI tests
#   make test SANITIZE=address,undefined   the same suite under ASan/UBSan
#   make bench           benchmarks, printed as tables
#   make install PREFIX=/usr/local
#
# -march=native: the binary is built on the machine (or node type) that runs it;
# set MARCH=x86-64-v3 (or similar) to build for a cluster's compute nodes elsewhere.

PKGS     := hdf5-openmpi openblas yaml-0.1 libpcre2-8 jansson libpng libcrypto
CC       := mpicc
MARCH    ?= native
OPT      ?= -O2
PREFIX   ?= /usr/local
SANITIZE ?=
PYTHON   ?= /usr/bin/python3

ifeq ($(SANITIZE),)
BUILD := build/rel
else
BUILD := build/san
endif

DEPS_OK := $(shell sh tools/deps.sh build >&2 && echo ok)
ifneq ($(DEPS_OK),ok)
$(error missing build dependencies (see the lines above))
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -march=$(MARCH) -fopenmp-simd -g -Wall -Wextra -Wshadow \
           -Wno-unused-parameter -MMD -MP -Iinclude $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lhdf5_hl -lmvec -lm
LDFLAGS :=
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

WORKER_SRC := $(wildcard worker/*.c)
RUNNER_SRC := $(wildcard runner/*.c)
LIB_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(WORKER_SRC) $(filter-out runner/main.c,$(RUNNER_SRC)))
MAIN_OBJ   := $(BUILD)/runner/main.o
LIB        := $(BUILD)/libpatchgrid.a
BIN        := $(BUILD)/patchgrid

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test test-unit test-py test-slurm bench demo install clean FORCE
all: $(BIN) build/patchgrid

# build/patchgrid points at the binary of the last `make` (rel or san), so scripts need not
# know the mode; relinked on every run (make would compare the target's mtime through the link).
build/patchgrid: $(BIN) FORCE
	@ln -sf $(notdir $(BUILD))/patchgrid $@

FORCE:

$(BIN): $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Tests and benchmarks link the objects they use from an archive.
$(LIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

deps:
	sh tools/deps.sh test

test: all $(UNIT_BIN)
	@sh tools/deps.sh test
	sh tests/run_all.sh $(BUILD)

test-unit: $(UNIT_BIN)
	sh tests/run_all.sh $(BUILD) unit

test-slurm: all
	sh tests/run_all.sh $(BUILD) slurm

demo: all
	sh tools/demo.sh $(BUILD)

bench: all $(BENCH_BIN)
	@sh tools/deps.sh test
	sh tests/bench/run_bench.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/patchgrid
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/patchgrid
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/patchgrid/
	install -d $(DESTDIR)$(PREFIX)/share/patchgrid/slurm
	install -m 755 slurm/sweep.sbatch $(DESTDIR)$(PREFIX)/share/patchgrid/slurm/
	ln -sf sweep.sbatch $(DESTDIR)$(PREFIX)/share/patchgrid/slurm/array.sbatch
	install -m 644 slurm/README.md $(DESTDIR)$(PREFIX)/share/doc/patchgrid/slurm.md

clean:
	rm -rf build

-include $(patsubst %.o,%.d,$(LIB_OBJ) $(MAIN_OBJ)) $(UNIT_BIN:=.d) $(BENCH_BIN:=.d)
