# brokerd — one GNU Makefile for the daemon, the client library, the tools
# and the tests.  `make run` and `make check` work on a fresh Debian machine:
# both install what is missing first (scripts/install-deps.sh).
#
#   make            build brokerd, the client library and the tools (-O2 -g)
#   make check      install deps, build with ASan+UBSan, run every test
#   make run        install deps, build, start brokerd with broker.conf.example
#   make bench      install deps (+fio), build optimised, run the benchmarks
#   make torture    install deps, build with ASan+UBSan, long crash tests
#   make fuzz       build the libFuzzer targets with clang, run each for
#                   FUZZ_SECONDS (300); `make check` runs each for 20 s
#                   with the fixed seed FUZZ_CHECK_SEED (1)
#   make install    PREFIX=/usr/local DESTDIR=
#   make SAN=1 ...  any target with AddressSanitizer + UndefinedBehaviorSanitizer

PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0
CC      ?= cc

ifeq ($(SAN),1)
B       ?= build/san
OPT     ?= -O1 -g -fno-omit-frame-pointer
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all
else
B       ?= build/rel
OPT     ?= -O2 -g
SANFLAGS =
endif

PKGS     = libevent liburing libprotobuf-c libisal
# Recursive (=) on purpose: evaluated only when a recipe needs it, i.e. after
# the deps step of `check`/`run`/`bench` has installed pkg-config files.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CHECK_LIBS = $(shell pkg-config --libs check)

WARN = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wwrite-strings -Wvla -Wpointer-arith -Wundef \
       -Wnull-dereference -Wimplicit-fallthrough
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -fPIC -MMD -MP \
             -I. -I$(B)/gen -Iclient/include -I$(B)/include $(PKG_CFLAGS) $(CFLAGS)
# -pthread: the producer runs an I/O thread (libbrokerc, and what links it).
ALL_LDFLAGS = $(SANFLAGS) -pthread $(LDFLAGS)

# --- sources ---------------------------------------------------------------
PROTO_SRC   = $(wildcard proto/*.proto)
PROTO_GEN   = $(patsubst proto/%.proto,$(B)/gen/proto/%.pb-c.c,$(PROTO_SRC))
WIRE_SRC    = $(wildcard proto/*.c)
BROKER_SRC  = $(filter-out broker/main.c,$(wildcard broker/*.c))
# Unit suites (tests/unit) and integration suites (tests/integration, which
# start the brokerd binary) share one Check runner.
UNIT_SRC    = $(wildcard tests/unit/check_*.c tests/integration/check_*.c)
UNIT_NAMES  = $(patsubst check_%.c,%,$(notdir $(UNIT_SRC)))
HARNESS_SRC = tests/integration/harness.c
BENCH_SRC   = $(wildcard tests/bench/*.c)
CLIENT_SRC  = $(wildcard client/*.c)
TOOLS_SRC   = $(wildcard tools/*.c)

obj = $(patsubst %.c,$(B)/%.o,$(1))
WIRE_OBJ    = $(call obj,$(WIRE_SRC)) $(PROTO_GEN:.c=.o)
BROKER_OBJ  = $(call obj,$(BROKER_SRC))

# The client library: its own code, the shared wire code and the codec.
CLIENT_OBJ  = $(call obj,$(CLIENT_SRC) proto/batch.c proto/partition.c) \
              $(B)/gen/proto/broker.pb-c.o
# Its public headers: client.h and the generated codec, as installed.
PUB_PB_H    = $(B)/include/brokerd/broker.pb-c.h

LIBWIRE   = $(B)/libwire.a
LIBCLIENT = $(B)/libbrokerc.a
SONAME    = libbrokerc.so.0
LIBCLIENT_SO = $(B)/libbrokerc.so.0.2.0
LIBBROKER = $(B)/libbrokerd.a
BROKERD   = $(B)/brokerd
CHECK_UNIT = $(B)/tests/check_unit
BENCHES   = $(patsubst tests/bench/%.c,$(B)/bench/%,$(BENCH_SRC))
TOOLS     = $(patsubst tools/%.c,$(B)/%,$(TOOLS_SRC))
# The crash-test client (tests/crash): links the client library.
CRASHDRV  = $(B)/tests/crashdrv

.PHONY: all deps deps-bench check test run bench bench-run install clean torture torture-run
.DEFAULT_GOAL := all
# Keep generated codec sources (make would delete them as intermediates).
.SECONDARY: $(PROTO_GEN) $(PROTO_GEN:.c=.h)

all: $(BROKERD) $(LIBCLIENT) $(LIBCLIENT_SO) $(TOOLS)

deps:
	@scripts/install-deps.sh build
deps-bench:
	@scripts/install-deps.sh bench

# --- build rules -------------------------------------------------------------
$(B)/gen/proto/%.pb-c.c $(B)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(@D)
	protoc-c --c_out=$(B)/gen $<

$(PUB_PB_H): $(B)/gen/proto/broker.pb-c.h
	@mkdir -p $(@D)
	cp $< $@

# Every object may include generated protobuf headers.
$(B)/%.o: %.c | $(PROTO_GEN) $(PUB_PB_H)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/gen/proto/%.pb-c.o: $(B)/gen/proto/%.pb-c.c
	$(CC) $(filter-out -W%,$(ALL_CFLAGS)) -c $< -o $@

$(LIBWIRE): $(WIRE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBBROKER): $(BROKER_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBCLIENT): $(CLIENT_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBCLIENT_SO): $(CLIENT_OBJ)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ \
		$(shell pkg-config --libs libprotobuf-c libisal)

# Tools link only the client library, as any user program would.
$(TOOLS): $(B)/%: $(B)/tools/%.o $(LIBCLIENT)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell pkg-config --libs libprotobuf-c libisal) -lpthread

$(BROKERD): $(B)/broker/main.o $(LIBBROKER) $(LIBWIRE)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# The unit-test runner adds one Suite per tests/unit/check_<name>.c, each of
# which exports `Suite *<name>_suite(void)`.
$(B)/gen/suites.h: $(UNIT_SRC)
	@mkdir -p $(@D)
	@printf '$(foreach n,$(UNIT_NAMES),SUITE($(n))\n)' > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

$(B)/tests/unit/runner.o: $(B)/gen/suites.h

# Integration tests exec the brokerd of the same build.
$(B)/tests/integration/%.o: ALL_CFLAGS += -DBROKERD_PATH='"$(BROKERD)"' \
	-DTESTS_INTEGRATION_DIR='"$(CURDIR)/tests/integration"' -DPROTO_DIR='"$(CURDIR)/proto"' \
	-DBROKERCTL_PATH='"$(B)/brokerctl"' -DBROKER_BENCH_PATH='"$(B)/broker-bench"'

$(CHECK_UNIT): $(B)/tests/unit/runner.o $(call obj,$(UNIT_SRC) $(HARNESS_SRC)) $(LIBBROKER) $(LIBCLIENT) $(LIBWIRE)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lm

$(CRASHDRV): $(B)/tests/crash/crashdrv.o $(LIBCLIENT)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell pkg-config --libs libprotobuf-c libisal) -lpthread

$(B)/bench/%: $(B)/tests/bench/%.o $(LIBBROKER) $(LIBWIRE)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# --- fuzzing (tests/fuzz; see docs/operations.md "Fuzzing") ------------------
# One libFuzzer binary per tests/fuzz/fuzz_<name>.c, built with clang into
# build/fuzz (every object with -fsanitize=fuzzer-no-link,address,undefined).
FUZZ_SECONDS       ?= 300
FUZZ_CHECK_SECONDS ?= 20
FUZZ_CHECK_SEED    ?= 1
FUZZ_NAMES = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   = $(patsubst %,$(B)/fuzz/%,$(FUZZ_NAMES))
FUZZ_MAKE  = $(MAKE) --no-print-directory B=build/fuzz CC=clang SAN=1 \
	SANFLAGS='-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all'

.PHONY: fuzz fuzz-build fuzz-corpus
fuzz: deps
	$(FUZZ_MAKE) fuzz-build
	tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-build: $(FUZZ_BIN) $(B)/fuzz/mkcorpus

# Regenerates the valid seeds of tests/fuzz/corpus/ (checked in).
fuzz-corpus:
	$(FUZZ_MAKE) fuzz-build
	build/fuzz/fuzz/mkcorpus tests/fuzz/corpus

$(filter-out $(B)/fuzz/request,$(FUZZ_BIN)): $(B)/fuzz/%: $(B)/tests/fuzz/fuzz_%.o $(LIBBROKER) $(LIBWIRE)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

# The request target answers requests itself (its own srv_req_done), so it
# links the broker modules without the TCP server.
$(B)/fuzz/request: $(B)/tests/fuzz/fuzz_request.o \
		$(filter-out $(B)/broker/server.o,$(BROKER_OBJ)) $(LIBWIRE)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

$(B)/fuzz/mkcorpus: $(B)/tests/fuzz/mkcorpus.o $(LIBBROKER) $(LIBWIRE)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# --- top-level targets -------------------------------------------------------
check: deps
	$(MAKE) --no-print-directory SAN=1 test
	$(FUZZ_MAKE) fuzz-build
	FUZZ_SEED=$(FUZZ_CHECK_SEED) tests/fuzz/run.sh build/fuzz $(FUZZ_CHECK_SECONDS) $(FUZZ_NAMES)

test: $(BROKERD) $(CHECK_UNIT) $(LIBCLIENT) $(LIBCLIENT_SO) $(TOOLS) $(CRASHDRV)
	CK_DEFAULT_TIMEOUT=120 $(CHECK_UNIT)
	tests/install.sh
	python3 tests/crash/crash.py --build $(B) short

# Crash tests, long form (tests/crash, docs/testing.md): >= 100 cycles each.
torture: deps
	$(MAKE) --no-print-directory SAN=1 torture-run

torture-run: $(BROKERD) $(CRASHDRV)
	python3 tests/crash/crash.py --build $(B) long

run: deps
	$(MAKE) --no-print-directory all
	$(BROKERD) -c broker.conf.example

bench: deps-bench
	$(MAKE) --no-print-directory SAN=0 bench-run

bench-run: $(BENCHES) $(BROKERD) $(TOOLS)
	tests/bench/run.sh $(B)

LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DOCDIR     ?= $(PREFIX)/share/doc/brokerd
UNITDIR    ?= $(PREFIX)/lib/systemd/system

# Binaries, the client library (static, shared, header, pkg-config file,
# the .proto), the example config (also as the default config when none is
# installed yet), the docs and a systemd unit.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR)/brokerd $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(PREFIX)/share/brokerd $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(BROKERD) $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBCLIENT) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIBCLIENT_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIBCLIENT_SO)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libbrokerc.so
	install -m 644 client/include/brokerd/client.h $(PUB_PB_H) $(DESTDIR)$(INCLUDEDIR)/brokerd/
	install -m 644 proto/broker.proto $(DESTDIR)$(PREFIX)/share/brokerd/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		dist/brokerc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/brokerc.pc
	install -m 644 broker.conf.example README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	[ -e $(DESTDIR)$(SYSCONFDIR)/brokerd.conf ] || \
		install -m 644 broker.conf.example $(DESTDIR)$(SYSCONFDIR)/brokerd.conf
	sed -e 's|@BINDIR@|$(PREFIX)/bin|; s|@SYSCONFDIR@|$(SYSCONFDIR)|; s|@DOCDIR@|$(DOCDIR)|' \
		dist/brokerd.service.in > $(DESTDIR)$(UNITDIR)/brokerd.service

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
