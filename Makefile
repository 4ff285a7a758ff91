# atrium - build, test, bench, install. Plain make, incremental (-MMD -MP).
#   make               library (static and shared), tools, gateway
#   make run           install what is missing, build, start on the default store
#   make check         install what is missing, build with -Werror, run every test
#                      (loops at their short length, tests in nproc lanes:
#                      about 3 minutes)
#   make check-long    the same, every loop at full length (ATRIUM_CHECK_LONG=1:
#                      500-kill trials, CPython's tests under spawn too)
#   make check SANITIZER=address,undefined   make check under ASan and UBSan
#   make bench         benchmarks beside their peers
#   make fuzz          both fuzz targets (request, store images) 5 minutes each
#                      (FUZZ_TIME=seconds, FUZZ_TARGET=request|store)
#   make check-containers   (root) the image and the sidecar under real engines
#   make install PREFIX=/usr/local DESTDIR=
#   make format        clang-format the tree (make format-check: check only)

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
# systemd reads units and sysusers.d files from PREFIX/lib too (/usr/local
# included); packagers install with PREFIX=/usr.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
DESTDIR ?=

CC      ?= cc
ifeq ($(origin CC),default)
CC      := cc
endif
SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD   ?= build
SANFLAGS :=
else
BUILD   ?= build/san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

ARCH    := $(shell uname -m)
ifeq ($(ARCH),x86_64)
ARCHFLAGS := -mcx16
endif

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers
OPT     ?= -O2 -g
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(ARCHFLAGS) $(SANFLAGS) \
           -fPIC -fvisibility=hidden -pthread -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread
WERROR  ?=
CFLAGS  += $(WERROR)

.PHONY: all lib run check test bench fuzz fuzz-build install uninstall clean format format-check deps check-containers check-scale check-long
all: lib tools

# ---------------------------------------------------------------- deps
# The install step runs when a needed package is missing (it checks first).
DEPS_STAMP := build/.deps-ok
deps: $(DEPS_STAMP)
$(DEPS_STAMP): deploy/install-deps.sh
	@sh deploy/install-deps.sh
	@mkdir -p $(dir $@) && touch $@

# ---------------------------------------------------------------- core
CORE_SRC := $(wildcard core/*.c)
CORE_LIB_SRC := $(filter-out core/cli.c,$(CORE_SRC))
CORE_OBJ := $(CORE_LIB_SRC:%.c=$(BUILD)/%.o)
LIB_A    := $(BUILD)/libatrium.a
LIB_SO   := $(BUILD)/libatrium.so
SOVER    := 1

lib: $(LIB_A) $(LIB_SO)

# The boundary is the include path: core's own files (and the white-box
# tests) see core/ and define ATR__CORE_BUILD, which internal.h demands;
# everything else (tools, gateway, benchmarks, examples) sees include/ only.
PUBLIC_INC := -Iinclude
CORE_INC   := -Iinclude -Icore -DATR__CORE_BUILD
$(BUILD)/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CORE_INC) -c $< -o $@
$(BUILD)/core/cli.o: core/cli.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@
$(BUILD)/tests/events/%.o: tests/events/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@

$(LIB_A): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,libatrium.so.$(SOVER) $(LDFLAGS) -o $@ $^

# The other boundary: core includes nothing of HTTP, JSON or nng (their
# headers are not on core's include path either, but they sit in
# /usr/include, so this one stays a check).
check-boundaries:
	@! grep -nE '#include *[<"](microhttpd|cjson/|cJSON|nng/)' core/*.c core/*.h include/*.h \
	  || { echo "core must not include HTTP/JSON/nng headers"; exit 1; }

# ---------------------------------------------------------------- tools
TOOLS := $(BUILD)/atrium
tools: $(TOOLS)
$(BUILD)/atrium: $(BUILD)/core/cli.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^

# ---------------------------------------------------------------- gateway
# atriumd links the core's public API only (see check-boundaries).
GW_SRC   := $(wildcard gateway/*.c)
GW_OBJ   := $(GW_SRC:%.c=$(BUILD)/%.o)
ATRIUMD  := $(BUILD)/atriumd
GW_PKGS  := libmicrohttpd libcjson nng
GW_CFLAGS = $(shell pkg-config --cflags $(GW_PKGS) 2>/dev/null)
GW_LIBS   = $(shell pkg-config --libs $(GW_PKGS) 2>/dev/null || echo -lmicrohttpd -lcjson -lnng)
ifneq ($(GW_SRC),)
all: $(ATRIUMD)
endif
$(BUILD)/gateway/%.o: gateway/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(GW_CFLAGS) $(PUBLIC_INC) -c $< -o $@
# Files compiled in as byte arrays made with od: the OpenAPI document, and
# every file of web/ (the dashboard; no build step of its own). In a recipe,
# $(call gw_embed,FILE,SYMBOL) prints the C definition of SYMBOL[]: FILE's
# bytes and one NUL that is not counted.
gw_embed = printf 'const unsigned char %s[] = {\n' "$(2)"; \
	  od -An -v -tx1 "$(1)" | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '0};\n'
GW_OPENAPI := $(BUILD)/gateway/openapi_json.o
$(BUILD)/gateway/openapi_json.c: gateway/openapi.json
	@mkdir -p $(dir $@)
	{ printf '#include <stddef.h>\n'; \
	  $(call gw_embed,$<,gw_openapi_json); \
	  printf 'const size_t gw_openapi_json_len = sizeof(gw_openapi_json) - 1;\n'; \
	} > $@
$(GW_OPENAPI): $(BUILD)/gateway/openapi_json.c
	$(CC) $(CFLAGS) -c $< -o $@
# web/NAME is served at /web/NAME (web.c gives the content type by the
# extension); its ETag is the file's cksum. The folder is a prerequisite so
# that removing a file rebuilds the table.
WEB_FILES := $(sort $(wildcard web/*))
GW_WEB := $(BUILD)/gateway/web_files.o
$(BUILD)/gateway/web_files.c: $(WEB_FILES) web Makefile
	@mkdir -p $(dir $@)
	@echo "embed $(WEB_FILES) in $@"
	@{ set -e; printf '#include "routes.h"\n'; i=0; \
	  for f in $(WEB_FILES); do \
	    case $${f#web/} in *[!A-Za-z0-9_.-]*) \
	      echo "$$f: web file names are A-Z a-z 0-9 _ . - only" >&2; exit 1;; \
	    esac; \
	    $(call gw_embed,$$f,gw_web_$$i); i=$$((i + 1)); \
	  done; \
	  printf 'const struct gw_web_file gw_web_files[] = {\n'; i=0; \
	  for f in $(WEB_FILES); do \
	    sum=$$(cksum < "$$f" | cut -d' ' -f1); \
	    printf '    {"%s", gw_web_%d, sizeof(gw_web_%d) - 1, "\\"%s\\""},\n' \
	      "$${f#web/}" $$i $$i "$$sum"; i=$$((i + 1)); \
	  done; \
	  printf '    {NULL, NULL, 0, NULL}};\n'; \
	} > $@.tmp && mv $@.tmp $@
$(GW_WEB): $(BUILD)/gateway/web_files.c
	$(CC) $(CFLAGS) -Igateway $(PUBLIC_INC) -c $< -o $@
$(ATRIUMD): $(GW_OBJ) $(GW_OPENAPI) $(GW_WEB) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(GW_LIBS)

# ---------------------------------------------------------------- tests
TEST_SRC  := $(wildcard tests/core/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/core/%.c=$(BUILD)/tests/%)
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

$(BUILD)/tests/%: $(BUILD)/tests/core/%.o $(BUILD)/tests/core/testutil.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)
$(BUILD)/tests/core/%.o: tests/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CORE_INC) -Itests/core -c $< -o $@

# The build runs its jobs on every CPU (unless make was given a -j), the
# source checks and the fuzz targets' build (tests/fuzz/test_fuzz.sh then
# finds them made) among them; tests/run.sh runs the tests in as many
# lanes (ATRIUM_TEST_JOBS=1: one at a time).
NPROC := $(shell nproc 2>/dev/null || echo 1)
CHECK_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))
check: WERROR := -Werror
check: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory $(CHECK_J) WERROR=-Werror \
	  check-boundaries format-check all tests fuzz-build
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)
# The same build and the same tests, each at full length: a test reads
# ATRIUM_CHECK_LONG (tu_long() in C, gw.long_run() in Python) and runs its
# short version without it. The whole list, not the long tests alone, so
# that a new test with a long form needs no list of its own here.
check-long:
	@ATRIUM_CHECK_LONG=1 $(MAKE) --no-print-directory check
test: check
# make check-scale: tests/core/test_scale.c at 1,000,000 objects (make
# check runs it at 20,000): created, listed by pages, deleted, reopened.
# About 13 s of CPU (3 min of wall time on a 2-core machine at load 30).
check-scale: WERROR := -Werror
check-scale:
	@$(MAKE) --no-print-directory WERROR=-Werror $(BUILD)/tests/test_scale
	@ATRIUM_CHECK_SCALE=1 timeout 1800 $(BUILD)/tests/test_scale
tests: $(TEST_BIN)
# The helper of tests/gateway/test_busy.py (white-box): takes one of the
# store's internal locks and stops itself holding it.
HOLD_LOCK := $(BUILD)/tests/hold_lock
tests: $(HOLD_LOCK)
$(HOLD_LOCK): $(BUILD)/tests/core/hold_lock.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
# The helper of tests/events: an nng subscriber, fast libatrium writers.
EVENTS_TOOL := $(BUILD)/tests/events/ev_tool
tests: $(EVENTS_TOOL)
$(EVENTS_TOOL): $(BUILD)/tests/events/ev_tool.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ -lnng
# The C process of the gateway's lock tests (tests/gateway/test_sync.py).
SYNC_TOOL := $(BUILD)/tests/gateway/sync_tool
tests: $(SYNC_TOOL)
$(SYNC_TOOL): $(BUILD)/tests/gateway/sync_tool.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
# The C process of the gateway's dict tests (tests/gateway/test_dict.py).
DICT_TOOL := $(BUILD)/tests/gateway/dict_tool
tests: $(DICT_TOOL)
$(DICT_TOOL): $(BUILD)/tests/gateway/dict_tool.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/tests/gateway/%.o: tests/gateway/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@

# ---------------------------------------------------------------- soak
# make soak (not part of make check): SOAK_S seconds (default 600) of local
# C processes and HTTP clients on one store, with kill -9 of both and
# SIGSTOP/SIGCONT of the C processes; then every invariant is checked and
# one table printed (tests/soak/soak.py). Under the sanitizers:
# make soak SANITIZER=address,undefined. Each C putter puts at most
# SOAK_PUT_RATE items a second (default 2000; 0: no limit), so that an
# hour's accounting stays small (a bytearray per putter, not a string per
# item).
SOAK_S ?= 600
SOAK_WORKER := $(BUILD)/tests/soak/soak_worker
.PHONY: soak
soak: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all $(SOAK_WORKER)
	@BUILD=$(BUILD) SOAK_S=$(SOAK_S) python3 tests/soak/soak.py
$(SOAK_WORKER): $(BUILD)/tests/soak/soak_worker.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/tests/soak/%.o: tests/soak/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@
tests: $(SOAK_WORKER)

# ---------------------------------------------------------------- containers
# make check-containers (root): the image built from the Dockerfile as it
# is and the sidecar run under real engines, Docker with
# deploy/compose.yaml and podman with deploy/kubernetes.yaml; see
# tests/containers/check.sh. It fails when the image is over its budget.
IMAGE_BUDGET_MB ?= 90
DEPS_CT_STAMP := build/.deps-containers-ok
$(DEPS_CT_STAMP): deploy/install-deps.sh
	@sh deploy/install-deps.sh --containers
	@mkdir -p $(dir $@) && touch $@
# The application's C programs (the adder; the locker, whose holder and
# waiter run in containers of their own), linked statically so that they
# run in any container; always the plain build (a sanitizer's runtime is
# not there).
CT_PROGS := build/tests/containers/adder build/tests/containers/locker
check-containers: $(DEPS_CT_STAMP)
	@$(MAKE) --no-print-directory BUILD=build SANITIZER= WERROR=-Werror $(CT_PROGS)
	@BUILD=build IMAGE_BUDGET_MB=$(IMAGE_BUDGET_MB) bash tests/containers/check.sh
tests: $(BUILD)/tests/containers/adder.o $(BUILD)/tests/containers/locker.o
$(BUILD)/tests/containers/adder $(BUILD)/tests/containers/locker: $(BUILD)/tests/containers/%: $(BUILD)/tests/containers/%.o $(LIB_A)
	$(CC) $(LDFLAGS) -static -o $@ $^
$(BUILD)/tests/containers/%.o: tests/containers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@

# ---------------------------------------------------------------- fuzz
# Two libFuzzer targets, built with clang, coverage, ASan and UBSan in
# FUZZ_BUILD:
# - request: request decoding (routing, query parameters, JSON bodies;
#   tests/fuzz/fuzz_request.c, which includes the gateway's headers), the
#   gateway (but main.c) and the core built again; seeds in
#   tests/fuzz/corpus, which it only reads;
# - store: store images (tests/fuzz/fuzz_store.c, white-box: it includes
#   core/internal.h); its seeds are real stores the target writes itself
#   (FUZZ_STORE_SEEDS=DIR) into FUZZ_BUILD/store_seeds.
# make fuzz runs each FUZZ_TIME seconds (FUZZ_TARGET=request or store: one
# of them); what a run learns goes to FUZZ_BUILD/corpus or
# FUZZ_BUILD/store_corpus, a crash to FUZZ_BUILD/crash-*. make check runs
# both briefly (tests/fuzz/test_fuzz.sh).
FUZZ_BUILD  ?= build/fuzz
FUZZ_TIME   ?= 300
FUZZ_TARGET ?= request store
fuzz: $(DEPS_STAMP) fuzz-build
	@set -e; for t in $(FUZZ_TARGET); do \
	  case $$t in \
	  request) mkdir -p $(FUZZ_BUILD)/corpus; \
	    $(FUZZ_BUILD)/fuzz_request -max_total_time=$(FUZZ_TIME) \
	      -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus tests/fuzz/corpus ;; \
	  store) mkdir -p $(FUZZ_BUILD)/store_corpus $(FUZZ_BUILD)/store_seeds; \
	    FUZZ_STORE_SEEDS=$(FUZZ_BUILD)/store_seeds $(FUZZ_BUILD)/fuzz_store; \
	    $(FUZZ_BUILD)/fuzz_store -max_total_time=$(FUZZ_TIME) -timeout=10 \
	      -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/store_corpus \
	      $(FUZZ_BUILD)/store_seeds ;; \
	  *) echo "FUZZ_TARGET: request or store, not $$t"; exit 2 ;; \
	  esac; done
fuzz-build:
	@$(MAKE) --no-print-directory CC=clang BUILD=$(FUZZ_BUILD) \
	  SANITIZER=fuzzer-no-link,address,undefined WERROR=$(WERROR) \
	  $(FUZZ_BUILD)/fuzz_request $(FUZZ_BUILD)/fuzz_store
$(BUILD)/tests/fuzz/fuzz_store.o: tests/fuzz/fuzz_store.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CORE_INC) -c $< -o $@
$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(GW_CFLAGS) -Igateway $(PUBLIC_INC) -c $< -o $@
$(BUILD)/fuzz_request: $(BUILD)/tests/fuzz/fuzz_request.o \
    $(filter-out $(BUILD)/gateway/main.o,$(GW_OBJ)) $(GW_OPENAPI) $(GW_WEB) $(LIB_A)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(GW_LIBS)
$(BUILD)/fuzz_store: $(BUILD)/tests/fuzz/fuzz_store.o $(LIB_A)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^

# ---------------------------------------------------------------- run
run: $(DEPS_STAMP) all
	$(BUILD)/atriumd

# ---------------------------------------------------------------- bench
# The benchmarks' peers (wrk, Redis, Webdis, nginx) are installed only here.
DEPS_BENCH_STAMP := build/.deps-bench-ok
$(DEPS_BENCH_STAMP): deploy/install-deps.sh
	@sh deploy/install-deps.sh --bench
	@mkdir -p $(dir $@) && touch $@
bench: $(DEPS_BENCH_STAMP)
	@$(MAKE) --no-print-directory all $(BUILD)/bench/core_bench
	@sh bench/run.sh $(BUILD)
	@$(MAKE) --no-print-directory $(BUILD)/bench/events_bench
	@sh bench/events_bench.sh $(BUILD)
	@$(MAKE) --no-print-directory $(BUILD)/bench/growth_fill
	@python3 bench/growth_bench.py $(BUILD)
# Events: from a local put to nng and SSE subscribers, beside bare nng.
$(BUILD)/bench/events_bench: $(BUILD)/bench/events_bench.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ -lnng
$(BUILD)/bench/core_bench: $(BUILD)/bench/core_bench.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/bench/growth_fill: $(BUILD)/bench/growth_fill.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PUBLIC_INC) -c $< -o $@

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/atrium.h $(DESTDIR)$(INCDIR)/atrium.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libatrium.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libatrium.so.$(SOVER)
	ln -sf libatrium.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libatrium.so
	install -m 755 $(BUILD)/atrium $(DESTDIR)$(BINDIR)/atrium
	install -m 755 $(ATRIUMD) $(DESTDIR)$(BINDIR)/atriumd
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|' \
	  core/atrium.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/atrium.pc
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|' deploy/atriumd.service.in \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/atriumd.service
	install -m 644 deploy/atrium.sysusers $(DESTDIR)$(SYSUSERSDIR)/atrium.conf

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/atrium.h $(DESTDIR)$(LIBDIR)/libatrium.a \
	  $(DESTDIR)$(LIBDIR)/libatrium.so $(DESTDIR)$(LIBDIR)/libatrium.so.$(SOVER) \
	  $(DESTDIR)$(BINDIR)/atrium $(DESTDIR)$(BINDIR)/atriumd \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/atrium.pc \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/atriumd.service $(DESTDIR)$(SYSUSERSDIR)/atrium.conf

# ---------------------------------------------------------------- python client
# clients/python/atrium (standard library only) into the site-packages of
# Debian's python3 under PREFIX; _installed.py tells the package where
# libatrium.so.1 went. From the checkout: PYTHONPATH=clients/python.
PY_SRC  := $(filter-out %/_installed.py,$(wildcard clients/python/atrium/*.py))
PYTHON  ?= python3
# Its version, include folder and extension suffix from one run of it (a
# make reads them every time: tenths of a second per start, seconds on a
# busy machine, and make check runs make several times).
PY_CONF := $(shell $(PYTHON) -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_paths()["include"], sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PYVER   := $(word 1,$(PY_CONF))
# atrium._fast, the local transport's hot paths in C (CPython's C API),
# built against the headers of the python3 that will import it (Debian's
# python3-dev) and against include/atrium.h only: it calls the libatrium
# the package loaded (see the top of _fast.c). In the checkout the package
# finds it beside that library, in $(BUILD)/python/ (a sanitizer build's
# beside the sanitizer build's library); installed, in the package.
PY_INC  := $(word 2,$(PY_CONF))
PY_EXT  := $(word 3,$(PY_CONF))
PY_FAST := $(BUILD)/python/_fast$(PY_EXT)
.PHONY: python-ext
python-ext: $(PY_FAST)
# (A tree without the client, as the image's build copies it, builds the
# rest.)
ifneq ($(wildcard clients/python/atrium/_fast.c),)
all: python-ext
endif
$(BUILD)/python/_fast.o: clients/python/atrium/_fast.c
	@mkdir -p $(dir $@)
	@test -f "$(PY_INC)/Python.h" || { echo "python-ext: no Python.h in '$(PY_INC)': install python3-dev (sh deploy/install-deps.sh)" >&2; exit 1; }
	$(CC) $(CFLAGS) -I$(PY_INC) $(PUBLIC_INC) -c $< -o $@
$(PY_FAST): $(BUILD)/python/_fast.o
	$(CC) -shared $(LDFLAGS) -o $@ $^
ifeq ($(PREFIX),/usr)
PYDIR   ?= $(PREFIX)/lib/python3/dist-packages
else
PYDIR   ?= $(PREFIX)/lib/python$(PYVER)/dist-packages
endif
.PHONY: install-python uninstall-python
install: install-python
install-python: $(PY_FAST)
	install -d $(DESTDIR)$(PYDIR)/atrium
	install -m 644 $(PY_SRC) $(DESTDIR)$(PYDIR)/atrium/
	install -m 755 $(PY_FAST) $(DESTDIR)$(PYDIR)/atrium/
	printf 'LIBDIR = "%s"\n' '$(LIBDIR)' > $(DESTDIR)$(PYDIR)/atrium/_installed.py
uninstall: uninstall-python
uninstall-python:
	rm -rf $(DESTDIR)$(PYDIR)/atrium

# ---------------------------------------------------------------- misc
FORMAT_SRC = $(wildcard include/*.h core/*.c core/*.h tests/*/*.c tests/*/*.h bench/*.c gateway/*.c gateway/*.h)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
