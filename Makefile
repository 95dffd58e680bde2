# pgcoro — plain Makefile with pkg-config.
#   make                build ./pgcoro
#   make deps           install the Debian packages that are missing (apt-get; sudo when not root)
#   make check          deps, then build with ASan+UBSan and run every test (unit, fuzz-check,
#                       integration)
#   make unit           unit tests only (current SANITIZE setting)
#   make fuzz           each libFuzzer harness (tests/fuzz/) for FUZZ_SECONDS (default 60)
#   make fuzz-check     each harness over its committed corpus, then FUZZ_CHECK_SECONDS each
#   make demo           deps, build, start a throwaway PostgreSQL and pgcoro in front of it
#   make valgrind       unit tests under valgrind
#   make man            the manual pages, generated from the settings table (build/man)
#   make install        PREFIX=/usr DESTDIR= : binary, config, systemd units, man pages
#   make SANITIZE=address,undefined ...   any target with sanitizers

PKGS      := libevent libevent_pthreads libevent_openssl libpq inih openssl libsystemd pam \
             ldap lber
SANITIZE  ?=
BUILD     := build/$(if $(SANITIZE),san,plain)

CC        ?= cc
WARN      := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Wundef \
             -Wpointer-arith -Wshadow -Wno-unused-parameter
ifneq ($(CI),)
WARN      += -Werror
endif
ifneq ($(WERROR),)
WARN      += -Werror
endif
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread
ifneq ($(SANITIZE),)
CFLAGS    += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

SRCS      := $(wildcard src/*.c)
OBJS      := $(patsubst src/%.c,$(BUILD)/%.o,$(SRCS))
MOD_OBJS  := $(filter-out $(BUILD)/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
TOOLS     := $(BUILD)/tools/libpq_client $(BUILD)/tools/srvlogin_client

PGCORO_BIN := $(BUILD)/pgcoro

.PHONY: all pgcoro deps deps-npm check unit integration demo clean valgrind format-check man install bench bench-deps bench-metrics bench-callgrind bench-floor fuzz fuzz-check fuzz-build

all: pgcoro

# ./pgcoro is the binary of the last build asked for (plain or sanitizer): copied each
# time, since a plain build may be older than a sanitizer copy made since.
pgcoro: $(PGCORO_BIN)
	cp $(PGCORO_BIN) $@.tmp && mv -f $@.tmp $@   # a running ./pgcoro is replaced, not written

$(PGCORO_BIN): $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -MMD -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(MOD_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -DSRCDIR='"$(CURDIR)"' $(LDFLAGS) -o $@ $< $(MOD_OBJS) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tools/%: tests/integration/%.c | $(BUILD)/tools
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# srvlogin_client drives pgcoro's own server login: it links the modules, as unit tests do
$(BUILD)/tools/srvlogin_client: tests/integration/srvlogin_client.c $(MOD_OBJS) | $(BUILD)/tools
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(MOD_OBJS) $(LDLIBS)

$(BUILD) $(BUILD)/tests $(BUILD)/tools:
	mkdir -p $@

-include $(OBJS:.o=.d)

# ---- dependencies -------------------------------------------------------------------
DEB_PKGS := build-essential pkg-config libevent-dev libpq-dev libinih-dev check libssl-dev \
            openssl libsystemd-dev postgresql-15 postgresql-client-15 python3 python3-pytest \
            python3-pytest-timeout python3-psycopg2 python3-psycopg python3-asyncpg pgbouncer \
            python3-prometheus-client prometheus-pgbouncer-exporter libpostgresql-jdbc-java \
            default-jdk-headless clang libclang-rt-14-dev llvm nodejs libpam0g-dev \
            libldap-dev slapd ldap-utils
# clang 14 finds libFuzzer (-fsanitize=fuzzer) in libclang-rt-14-dev, which it only
# recommends; llvm gives llvm-symbolizer, for sanitizer reports with file:line.
# libpam0g-dev: auth_type pam; libldap-dev: auth_type ldap; slapd and ldap-utils: the LDAP tests' throwaway server
# (slapd installs without questions under DEBIAN_FRONTEND=noninteractive, set below).

# $(call apt_install,TARGET,PACKAGES): installs the Debian packages that are missing
# (apt-get; sudo when not root).
define apt_install
	@missing=""; for p in $(2); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make $(1): installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "make $(1): all Debian packages present"; fi
endef

deps:
	$(call apt_install,deps,$(DEB_PKGS))
	@# npm comes with NodeSource's nodejs; Debian's nodejs needs its npm package
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps-npm
	@# node-postgres for the integration tests, at the versions package-lock.json pins
	@test -d tests/integration/node/node_modules/pg || \
	  npm ci --prefix tests/integration/node --no-audit --no-fund --loglevel=error

deps-npm:
	$(call apt_install,deps,npm)

# ---- tests ---------------------------------------------------------------------------
unit: $(UNIT_BINS)
	@rc=0; for t in $(UNIT_BINS); do echo "== $$t"; CK_DEFAULT_TIMEOUT=60 $$t || rc=1; done; exit $$rc

integration: $(PGCORO_BIN) $(TOOLS)
	PGCORO_BIN=$(CURDIR)/$(PGCORO_BIN) PGCORO_TOOLS=$(CURDIR)/$(BUILD)/tools \
	  /usr/bin/python3 -m pytest -p no:cacheprovider --timeout=300 -q -rs tests/integration

check: deps
	$(MAKE) SANITIZE=address,undefined unit
	$(MAKE) fuzz-check
	$(MAKE) SANITIZE=address,undefined integration

valgrind: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do CK_FORK=no valgrind --error-exitcode=1 --leak-check=full -q $$t || exit 1; done

# Sub-makes: pkg-config flags are computed when make reads this file, so the build must
# start after deps installed the libraries (a fresh machine has none).
demo: deps
	$(MAKE) SANITIZE= pgcoro
	./tests/demo.sh

format-check:
	clang-format --dry-run --Werror src/*.c include/*.h

clean:
	rm -rf build pgcoro

# ---- fuzzing (README "Fuzzing") -----------------------------------------------------------
# The modules (src/*.c but main.c) are built again with clang, ASan+UBSan and coverage
# instrumentation in build/fuzz; each tests/fuzz/fuzz_NAME.c links them with libFuzzer into
# build/fuzz/fuzz_NAME. tests/fuzz/run.sh runs each once over tests/fuzz/corpus/NAME/
# (seeds, and the inputs of crashes found: every file must pass), then fuzzes a scratch
# copy of it for the given seconds; a crash, leak or timeout fails it.
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_CHECK_SECONDS ?= 10
FUZZ_BUILD         := build/fuzz
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                      -fno-omit-frame-pointer
FUZZ_CFLAGS        := -O1 -g -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Iinclude -Itests/fuzz \
                      $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_MOD_OBJS      := $(patsubst src/%.c,$(FUZZ_BUILD)/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_NAMES         ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS          := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))
FUZZ_LOOP_OBJ      := $(FUZZ_BUILD)/harness/loop.o

$(FUZZ_BUILD)/%.o: src/%.c $(wildcard include/*.h) | $(FUZZ_BUILD)/harness
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -c -o $@ $<

$(FUZZ_LOOP_OBJ): tests/fuzz/loop.c tests/fuzz/loop.h $(wildcard include/*.h) | $(FUZZ_BUILD)/harness
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/loop.h $(FUZZ_LOOP_OBJ) $(FUZZ_MOD_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LOOP_OBJ) $(FUZZ_MOD_OBJS) $(LDLIBS)

$(FUZZ_BUILD)/harness:
	mkdir -p $@

.SECONDARY: $(FUZZ_MOD_OBJS) $(FUZZ_LOOP_OBJ) # kept: each harness links them

-include $(FUZZ_MOD_OBJS:.o=.d)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-check: fuzz-build
	tests/fuzz/run.sh $(FUZZ_CHECK_SECONDS) $(FUZZ_NAMES)

# ---- manual pages and installation ---------------------------------------------------
MANPAGES := build/man/pgcoro.8 build/man/pgcoro.ini.5

man: $(MANPAGES)

build/man/%: $(PGCORO_BIN) | build/man
	$(PGCORO_BIN) --man $* > $@.tmp && mv -f $@.tmp $@

build/man:
	mkdir -p $@

# Debian paths by default; PREFIX=/usr/local for a local install. The config file is
# not overwritten when present. On systemd >= 253 the service becomes Type=notify-reload.
PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/pgcoro
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(shell pkg-config systemd --variable=systemdsystemunitdir 2>/dev/null || echo /lib/systemd/system)
SYSUSERSDIR ?= $(shell pkg-config systemd --variable=sysusersdir 2>/dev/null || echo /usr/lib/sysusers.d)
TMPFILESDIR ?= $(shell pkg-config systemd --variable=tmpfilesdir 2>/dev/null || echo /usr/lib/tmpfiles.d)
SYSTEMD_VERSION := $(shell systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9]*\).*/\1/p')

install: $(PGCORO_BIN) man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/pgcoro $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)
	install -m 755 $(PGCORO_BIN) $(DESTDIR)$(SBINDIR)/pgcoro
	test -e $(DESTDIR)$(SYSCONFDIR)/pgcoro/pgcoro.ini || \
	  sed -e 's|^;unix_socket_dir = .*|unix_socket_dir = /run/pgcoro|' \
	      -e 's|^;auth_file = .*|auth_file = $(SYSCONFDIR)/pgcoro/userlist.txt|' conf/pgcoro.ini \
	    > $(DESTDIR)$(SYSCONFDIR)/pgcoro/pgcoro.ini
	test -e $(DESTDIR)$(SYSCONFDIR)/pgcoro/userlist.txt || \
	  printf '; "user" "password" lines (PgBouncer format); see pgcoro.ini(5)\n' \
	    > $(DESTDIR)$(SYSCONFDIR)/pgcoro/userlist.txt
	chmod 640 $(DESTDIR)$(SYSCONFDIR)/pgcoro/pgcoro.ini $(DESTDIR)$(SYSCONFDIR)/pgcoro/userlist.txt
	sed -e 's|/usr/sbin/pgcoro|$(SBINDIR)/pgcoro|' -e 's|/etc/pgcoro/|$(SYSCONFDIR)/pgcoro/|' \
	  $(if $(shell test "0$(SYSTEMD_VERSION)" -ge 253 && echo y),-e 's|^Type=notify$$|Type=notify-reload|' -e '/^ExecReload=/d') \
	  systemd/pgcoro.service > $(DESTDIR)$(UNITDIR)/pgcoro.service
	install -m 644 systemd/pgcoro.socket $(DESTDIR)$(UNITDIR)/pgcoro.socket
	install -m 644 systemd/pgcoro.sysusers $(DESTDIR)$(SYSUSERSDIR)/pgcoro.conf
	install -m 644 systemd/pgcoro.tmpfiles $(DESTDIR)$(TMPFILESDIR)/pgcoro.conf
	install -m 644 build/man/pgcoro.8 $(DESTDIR)$(MANDIR)/man8/pgcoro.8
	install -m 644 build/man/pgcoro.ini.5 $(DESTDIR)$(MANDIR)/man5/pgcoro.ini.5
	install -m 644 README.md conf/pgcoro.ini $(DESTDIR)$(DOCDIR)/

# ---- benchmark (bench/README.md) -------------------------------------------------------
BENCH_DEB_PKGS := pgbouncer gnuplot-nox postgresql-15 postgresql-client-15 python3 openssl valgrind

bench-deps:
	$(call apt_install,bench-deps,$(BENCH_DEB_PKGS))

bench: bench-deps
	$(MAKE) SANITIZE= pgcoro
	./bench/run.sh

# what /metrics costs: pgcoro with and without metrics_listen, side by side
bench-metrics: bench-deps
	$(MAKE) SANITIZE= pgcoro
	/usr/bin/python3 bench/metrics_cost.py

# user-space instructions per transaction under callgrind, pgcoro vs PgBouncer
bench-callgrind: bench-deps
	$(MAKE) SANITIZE= pgcoro
	./bench/run.sh --callgrind

# pooler CPU per transaction beside bare 1:1 relays' (epoll and libevent: the floors), long runs at 10 clients
bench-floor: bench-deps build/bench/floor_relay
	$(MAKE) SANITIZE= pgcoro
	./bench/run.sh --floor

build/bench/floor_relay: bench/floor_relay.c
	mkdir -p $(@D)
	$(CC) -O2 $(WARN) -o $@ $< -levent
