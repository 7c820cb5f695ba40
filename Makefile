# Quick start on Debian 12:  make run   (demo)   |   make test   (every test)
# Both install missing Debian packages with apt-get when run as root, then build with CMake.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_MERGE ?= 1
# Build types `make build-matrix` compiles with gcc and with clang (-Werror on).
MATRIX_TYPES ?= Release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

# Build and test dependencies, all Debian 12 packages.
DEPS := cmake make gcc clang libclang-rt-14-dev pkg-config \
        libssl-dev openssl libevent-dev libsqlite3-dev libjansson-dev libinih-dev \
        libhttp-parser-dev libcmocka-dev libpq-dev postgresql \
        python3 python3-pytest python3-cryptography curl gnutls-bin procps
DEPS += python3-pyasn1   # EST csrattrs test: an independent DER decoder for CsrAttrs
DEPS += libcurl4-openssl-dev   # EST client HTTP (enroll, renew): proxies, timeouts
DEPS += scdoc dpkg-dev file lintian man-db systemd bash-completion   # man pages, make deb, package tests
DEPS += libp11-kit-dev softhsm2 opensc tpm2-openssl swtpm swtpm-tools tpm2-tools   # keys in tokens and TPMs
DEPS += libqrencode-dev chromium   # console: QR codes; browser test (Playwright, needs node + npm)
DEPS += libnghttp2-dev nghttp2-client python3-h2 python3-grpcio   # HTTP/2 and gRPC in the gateway
DEPS += tinyproxy   # a second, independent CONNECT proxy for the EST proxy tests

.PHONY: all deps browser-deps build run test test-unit test-asan check clean build-matrix fuzz install man deb

all: build

deps:
	@missing=""; \
	for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTW_WERROR=ON
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/twoway demo

# The console's browser test drives Debian's chromium with Playwright (npm registry; the lock
# file pins it). npm comes with Debian's npm package, or with a nodejs that bundles it.
browser-deps:
	@command -v npm >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	cd tests/browser && npm ci --no-audit --no-fund

test: build browser-deps
	scripts/checksrc.sh
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

# The whole suite again, built with clang under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTW_ASAN=ON -DTW_UBSAN=ON \
	  -DTW_WERROR=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# What a packager builds: each of MATRIX_TYPES with gcc and clang, -Werror on, build only,
# each in its own directory (build-Release-gcc, ...). CI runs it for Release.
build-matrix: deps
	set -e; for t in $(MATRIX_TYPES); do for cc in gcc clang; do \
	  echo "== $$t with $$cc"; \
	  CC=$$cc cmake -S . -B build-$$t-$$cc -DCMAKE_BUILD_TYPE=$$t -DTW_WERROR=ON >/dev/null; \
	  cmake --build build-$$t-$$cc -j $(JOBS); \
	done; done

# Every fuzz/*_fuzz.c for FUZZ_SECONDS each (clang, libFuzzer, ASan+UBSan); inputs that add
# coverage are merged into fuzz/corpus/<target>/ (FUZZ_MERGE=0 leaves the corpus alone).
# FUZZ_SEED=N FUZZ_RUNS=M: a fixed, repeatable run (what CI does).
fuzz: deps
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_MERGE=$(FUZZ_MERGE) FUZZ_SEED=$(FUZZ_SEED) \
	FUZZ_RUNS=$(FUZZ_RUNS) JOBS=$(JOBS) scripts/fuzz.sh $(FUZZ_SECONDS)

check:
	scripts/checksrc.sh

# Install into PREFIX (default /usr/local); DESTDIR=/some/root stages it elsewhere.
PREFIX  ?= /usr/local
DEB_BUILD ?= build-deb
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

man: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) --target man

# twoway_VERSION_ARCH.deb in this directory, built with Debian's hardening flags
# (dpkg-buildflags) in its own tree, then checked with lintian (errors fail the build).
deb: deps
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	  -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON \
	  -DCMAKE_C_FLAGS="$$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS) $$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)"
	cmake --build $(DEB_BUILD) -j $(JOBS) --target twoway man
	cd $(DEB_BUILD) && cpack -G DEB -B "$$PWD/deb"
	cp $(DEB_BUILD)/deb/twoway_*.deb .
	lintian --fail-on error twoway_*.deb

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD) build-*-gcc build-*-clang
