# Hardening checks (README: "Fuzzing and sanitizers").  Everything builds under build/.
PYTHON ?= .venv/bin/python
FUZZ_TARGETS ?= header chunk_open key_reference kms_blob policy
FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 15

.PHONY: fuzz fuzz-short

# Long runs, for a release or after touching a parser: FUZZ_SECONDS per target.
fuzz:
	nice -n 10 tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# What CI runs: a short smoke run of every target.
fuzz-short:
	tests/fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_TARGETS)
