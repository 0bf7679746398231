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

.PHONY: all deps run test unit e2e e2e-pg bench asan clean format fuzz fuzz-ci graphql-ref-deps

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
	@$(MAKE) --no-print-directory fuzz-ci
	@$(MAKE) --no-print-directory graphql-ref-deps
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory e2e-pg

# ---- GraphQL: the reference implementation (graphql-js from the npm registry, run with node) ----
# tests/e2e/test_graphql_ref.py drives tests/graphql-ref/ref.mjs; it installs the pinned package
# itself when node_modules is missing, and so does this target (for `make test` on a new machine).
# Debian's nodejs provides node; npm comes with it on machines with NodeSource's nodejs, else from
# Debian's npm package (not listed in debian-packages.txt: it conflicts with NodeSource's nodejs).
GQL_REF_DIR := tests/graphql-ref

graphql-ref-deps:
	@command -v npm >/dev/null 2>&1 || { echo 'graphql-ref: installing npm'; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm; }
	@[ -d $(GQL_REF_DIR)/node_modules/graphql ] || \
	  (cd $(GQL_REF_DIR) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

# ---- fuzzing: libFuzzer (clang, Debian's libclang-rt-14-dev) on the GraphQL parser ----
# `make fuzz` runs FUZZ_SECONDS (default 300); `make test` runs fuzz-ci, a 20 s run. New inputs go
# to build/fuzz/corpus (the committed seeds in tests/fuzz/corpus/graphql are only read); a crash
# is written to build/fuzz/ and fails the run: replay it with `build/fuzz/fuzz_graphql_parse FILE`.
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer -g -O1
FUZZ_SRC     := src/graphql/parse.c
# With the validator present, the target validates every document that parses, against the schema.
FUZZ_VALIDATE_SRC := $(wildcard src/graphql/validate.c)
ifneq ($(FUZZ_VALIDATE_SRC),)
FUZZ_SRC     += src/graphql/validate.c src/graphql/schema.c src/graphql/schema_data.c \
                src/graphql/values.c src/core/util.c src/domain/money.c
FUZZ_FLAGS   += -DFUZZ_VALIDATE
FUZZ_LIBS    := -ljansson -lsodium -lm
endif
FUZZ_SECONDS ?= 300
FUZZ_RUN      = build/fuzz/fuzz_graphql_parse -max_total_time=$(1) -max_len=8192 -timeout=10 \
                -rss_limit_mb=1024 -dict=tests/fuzz/graphql.dict -artifact_prefix=build/fuzz/ \
                -print_final_stats=1 build/fuzz/corpus tests/fuzz/corpus/graphql

build/fuzz/fuzz_graphql_parse: tests/fuzz/fuzz_graphql_parse.c $(FUZZ_SRC) $(HDR)
	@mkdir -p build/fuzz/corpus
	$(FUZZ_CC) $(CSTD) $(WARN) -Isrc $(PKG_CFLAGS) $(FUZZ_FLAGS) -o $@ \
	  tests/fuzz/fuzz_graphql_parse.c $(FUZZ_SRC) $(FUZZ_LIBS)

fuzz: build/fuzz/fuzz_graphql_parse
	$(call FUZZ_RUN,$(FUZZ_SECONDS))

fuzz-ci: build/fuzz/fuzz_graphql_parse
	$(call FUZZ_RUN,20)

bench: deps build/tally
	$(PY) bench/bench.py

clean:
	rm -rf build

format:
	clang-format -i $(SRC) $(HDR)
