"""Inputs the fuzz targets (tests/fuzz/) found to break a rule, each pinned to the behaviour that fixed it.

The rule for every parser: any input ends in a documented EnvelopeError, in
bounded time and memory, or succeeds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envelope.exceptions import KeyringError, UsageError
from envelope.keyrings.raw_aes import MAX_KEY_FILE_SIZE, load_key_file
from envelope.keyrings.registry import resolve
from envelope.kms.policy import document as policy
from keyfiles import write_key_file


def test_raw_aes_key_file_larger_than_any_key_is_refused(tmp_path) -> None:
    big = tmp_path / "big"
    write_key_file(big, b"a" * (MAX_KEY_FILE_SIZE + 1))
    with pytest.raises(KeyringError, match="must hold 32 raw bytes or 64 hex digits"):
        load_key_file(big)


def test_raw_aes_hex_key_file_with_whitespace_still_loads(tmp_path) -> None:
    key = tmp_path / "key"
    write_key_file(key, ("  " + "ab" * 32 + "\n\n").encode())
    assert load_key_file(key) == bytearray(b"\xab" * 32)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_raw_aes_key_file_that_never_ends_is_refused_in_bounded_memory(path: str) -> None:
    # Found by fuzz_key_reference: "raw-aes:/dev/zero" read until memory ran out.
    # Run in a child capped at 512 MiB of address space, so a regression fails here, not the machine.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
            "from envelope.keyrings.registry import resolve\n"
            "from envelope.exceptions import KeyringError\n"
            f"try:\n    resolve('raw-aes:{path}')\nexcept KeyringError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("it is longer"), result.stderr[-500:]


def _regex_like(pattern: str, value: str) -> bool:
    """The former definition of StringLike, kept here as the oracle for the new matcher."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def test_policy_wildcards_with_many_stars_are_judged_in_bounded_time() -> None:
    # Found by fuzz_policy: "*a*a*a*a*a*b" against a 200-character context value
    # backtracked for minutes, and a policy's patterns meet callers' values on every request.
    doc = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                          "Condition": {"StringLike": {"kms:EncryptionContext:purpose": "*a" * 8 + "b"}}},
                         {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}
    request = policy.Request("local:user/alice", "kms:Decrypt",
                             "arn:envelope:kms:local:000000000000:key/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                             {"kms:encryptioncontext:purpose": "a" * 300})
    started = time.monotonic()
    assert policy.evaluate(policy.parse(json.dumps(doc)), request, "local:root") == ("Allow", "")
    assert time.monotonic() - started < 2


def test_policy_action_with_a_run_of_stars_is_judged_in_bounded_time() -> None:
    # Found by fuzz_policy (a timeout): an Action of "kms:" then a hundred stars then "Re*"
    # made every request on the key backtrack without end, whoever the caller.
    doc = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["kms:" + "*" * 105 + "Re*"], "Resource": "*"},
                         {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}
    request = policy.Request("local:user/alice", "kms:Decrypt", "arn:envelope:kms:local:000000000000:key/x", {})
    started = time.monotonic()
    assert policy.evaluate(policy.parse(json.dumps(doc)), request, "local:root") == ("Allow", "")
    assert time.monotonic() - started < 2


@settings(max_examples=500, deadline=None)
@given(st.text("ab*?", max_size=8), st.text("ab?*", max_size=10))
def test_policy_wildcard_matcher_agrees_with_the_regex_definition(pattern: str, value: str) -> None:
    assert policy._like(pattern, value) == _regex_like(pattern, value)


@pytest.mark.parametrize("scheme", ["raw-aes", "rsa-public"])
@pytest.mark.parametrize("name", ["key\x00file", "\ud800key"], ids=["nul-byte", "lone-surrogate"])
def test_key_file_reference_with_an_impossible_file_name_is_a_usage_error(scheme: str, name: str) -> None:
    # Found by fuzz_key_reference: "raw-aes:" and a name with a NUL byte raised ValueError from open().
    with pytest.raises(UsageError, match="is not a valid path"):
        resolve(f"{scheme}:{name}")


@pytest.mark.parametrize("text", ["arn:aws:kms:eu-west-1:\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662:key/k",
                                  "arn:aws:kms:eu-west-1:１２３４５６７８９０１２:key/k"], ids=["arabic-indic", "fullwidth"])
def test_a_key_arn_whose_account_is_not_ascii_digits_is_not_an_arn(text: str) -> None:
    # Noticed while fuzzing key references: \d took any script's digits as an account id.
    from envelope.keyrings.kms_arn import KmsArn, is_account

    assert KmsArn.parse(text) is None
    assert not is_account(text.split(":")[4])
