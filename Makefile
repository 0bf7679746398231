# tally: plain Makefile. `make` builds build/tally; `make run` and `make test` first install
# any missing Debian package (scripts/deps.sh, list in scripts/debian-packages.txt).

CC      ?= cc
PKGS    := libmicrohttpd jansson libsodium libjwt sqlite3 libpq libcurl gnutls
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CSTD    := -std=c17 -D_GNU_SOURCE
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -I/usr/include/postgresql
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lmicrohttpd -ljansson -lsodium -ljwt -lsqlite3 -lpq -lcurl -lgnutls) -lwslay -lpthread -lm  # wslay ships no .pc file
CFLAGS_BASE = $(CSTD) $(WARN) -Isrc $(PKG_CFLAGS) -g

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
HDR      := $(shell find src -name '*.h')

REL_DIR  := build/release
ASAN_DIR := build/asan
REL_OBJ  := $(SRC:%.c=$(REL_DIR)/%.o)
ASAN_OBJ := $(SRC:%.c=$(ASAN_DIR)/%.o)
ASAN_LIB_OBJ := $(LIB_SRC:%.c=$(ASAN_DIR)/%.o)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(ASAN_DIR)/tests/%)

PY      := /usr/bin/python3
PORT    ?= 8080
DB      ?= ./tally.db

.PHONY: all deps run test unit e2e e2e-pg bench asan clean format

all: build/tally

deps:
	@./scripts/deps.sh

build/tally: $(REL_OBJ)
	$(CC) -o $@ $^ $(PKG_LIBS)

$(REL_DIR)/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	@echo '  CC     $<'
	@$(CC) $(CFLAGS_BASE) -O2 -c -o $@ $<

asan: build/tally-asan

build/tally-asan: $(ASAN_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

$(ASAN_DIR)/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	@echo '  CC+SAN $<'
	@$(CC) $(CFLAGS_BASE) -O1 $(SAN_FLAGS) -c -o $@ $<

$(ASAN_DIR)/tests/%: tests/unit/%.c $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 $(SAN_FLAGS) -o $@ $< $(ASAN_LIB_OBJ) $(PKG_LIBS) -lcmocka

run: deps build/tally
	./build/tally serve --port $(PORT) --db $(DB)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The end-to-end suite on SQLite (e2e) and on PostgreSQL 15 (e2e-pg: the suite starts its own
# cluster with initdb in a temporary directory and removes it; see tests/e2e/pgcluster.py).
e2e: build/tally-asan build/tally
	cd tests/e2e && TALLY_TEST_ENGINE=sqlite TALLY_BIN=$(CURDIR)/build/tally-asan $(PY) -m pytest -q -p no:cacheprovider $(or $(PYTEST_ARGS),.)

e2e-pg: build/tally-asan build/tally
	cd tests/e2e && TALLY_TEST_ENGINE=postgres TALLY_BIN=$(CURDIR)/build/tally-asan $(PY) -m pytest -q -p no:cacheprovider $(or $(PYTEST_ARGS),.)

# One engine after the other: each suite already keeps two cores busy (ASan servers, Argon2id),
# and side by side their timing-sensitive tests (deadlines of a second) would compete.
test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory e2e-pg

bench: deps build/tally
	$(PY) bench/bench.py

clean:
	rm -rf build

format:
	clang-format -i $(SRC) $(HDR)
