# Hardening checks (CONTRIBUTING.md: "Fuzzing and sanitizers").  Everything builds under build/;
# the installed envelope/_native*.so is never replaced.
PYTHON ?= .venv/bin/python
FUZZ_TARGETS ?= header chunk_open key_reference kms_blob policy
FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 15

.PHONY: fuzz fuzz-short sanitize valgrind install-checks

# Long runs, for a release or after touching a parser: FUZZ_SECONDS per target.
fuzz:
	PYTHON=$(abspath $(PYTHON)) nice -n 10 tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# What CI runs: a short run of every target.
fuzz-short:
	PYTHON=$(abspath $(PYTHON)) tests/fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_TARGETS)

# The native engine's tests against an ASan + UBSan build of csrc/ (build/asan/).
sanitize:
	PYTHON=$(abspath $(PYTHON)) tests/sanitize/run.sh asan

# The same tests under valgrind memcheck (build/valgrind/; 5 to 15 minutes, so not in CI).
valgrind:
	PYTHON=$(abspath $(PYTHON)) nice -n 10 tests/sanitize/run.sh valgrind

# Installs as users get them (tests/test_install.py with its slow tests): the source install
# without a compiler, the sdist built and tested alone, the auditwheel-repaired wheel.
install-checks:
	PYTHON=$(abspath $(PYTHON)) .ci/install-checks
