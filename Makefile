# atrium - build, test, bench, install. Plain make, incremental (-MMD -MP).
#   make               library (static and shared), tools, gateway
#   make run           install what is missing, build, start on the default store
#   make check         install what is missing, build with -Werror, run every test
#   make check SANITIZER=address,undefined   the same under ASan and UBSan
#   make bench         benchmarks beside their peers
#   make install PREFIX=/usr/local DESTDIR=
#   make format        clang-format the tree (make format-check: check only)

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
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

.PHONY: all lib run check test bench fuzz install uninstall clean format format-check deps
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

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icore -c $< -o $@

$(LIB_A): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,libatrium.so.$(SOVER) $(LDFLAGS) -o $@ $^

# The boundary rule: core includes nothing of HTTP, JSON or nng.
check-boundaries:
	@! grep -nE '#include *[<"](microhttpd|cjson/|cJSON|nng/)' core/*.c core/*.h \
	  || { echo "core must not include HTTP/JSON/nng headers"; exit 1; }
	@! grep -nE '#include *"[^"]*(internal|core/[a-z]+\.c)' gateway/*.c 2>/dev/null \
	  || { echo "gateway may include only core/atrium.h"; exit 1; }

# ---------------------------------------------------------------- tools
TOOLS := $(BUILD)/atrium
tools: $(TOOLS)
$(BUILD)/atrium: $(BUILD)/core/cli.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^

# ---------------------------------------------------------------- gateway
# atriumd links the core's public API only (see check-boundaries).
GW_SRC   := $(filter-out gateway/fuzz_%.c,$(wildcard gateway/*.c))
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
	$(CC) $(CFLAGS) $(GW_CFLAGS) -Icore -c $< -o $@
# The OpenAPI document is compiled in, as a byte array made with od.
GW_OPENAPI := $(BUILD)/gateway/openapi_json.o
$(BUILD)/gateway/openapi_json.c: gateway/openapi.json
	@mkdir -p $(dir $@)
	{ printf '#include <stddef.h>\nconst unsigned char gw_openapi_json[] = {\n'; \
	  od -An -v -tx1 $< | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '0};\nconst size_t gw_openapi_json_len = sizeof(gw_openapi_json) - 1;\n'; \
	} > $@
$(GW_OPENAPI): $(BUILD)/gateway/openapi_json.c
	$(CC) $(CFLAGS) -c $< -o $@
$(ATRIUMD): $(GW_OBJ) $(GW_OPENAPI) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(GW_LIBS)

# ---------------------------------------------------------------- tests
TEST_SRC  := $(wildcard tests/core/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/core/%.c=$(BUILD)/tests/%)
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

$(BUILD)/tests/%: $(BUILD)/tests/core/%.o $(BUILD)/tests/core/testutil.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)
$(BUILD)/tests/core/%.o: tests/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icore -Itests/core -c $< -o $@

check: WERROR := -Werror
check: $(DEPS_STAMP) check-boundaries
	@$(MAKE) --no-print-directory WERROR=-Werror all tests
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)
test: check
tests: $(TEST_BIN)

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
$(BUILD)/bench/core_bench: $(BUILD)/bench/core_bench.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icore -c $< -o $@

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR)
	install -m 644 core/atrium.h $(DESTDIR)$(INCDIR)/atrium.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libatrium.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libatrium.so.$(SOVER)
	ln -sf libatrium.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libatrium.so
	install -m 755 $(BUILD)/atrium $(DESTDIR)$(BINDIR)/atrium
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|' \
	  core/atrium.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/atrium.pc

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/atrium.h $(DESTDIR)$(LIBDIR)/libatrium.a \
	  $(DESTDIR)$(LIBDIR)/libatrium.so $(DESTDIR)$(LIBDIR)/libatrium.so.$(SOVER) \
	  $(DESTDIR)$(BINDIR)/atrium $(DESTDIR)$(LIBDIR)/pkgconfig/atrium.pc

# ---------------------------------------------------------------- misc
FORMAT_SRC = $(wildcard core/*.c core/*.h tests/core/*.c tests/core/*.h bench/*.c gateway/*.c gateway/*.h)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
