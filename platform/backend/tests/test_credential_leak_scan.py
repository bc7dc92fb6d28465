"""The session-end scan for credentials in logs (trainyard_testing.credential_leaks, issue 19)
can fail a run: inner pytest sessions that remember a credential and write it, or something
else, into a log under their tmp_path. The inner sessions load the plugin as every run does,
through its pytest11 entry point."""

from __future__ import annotations

import secrets

import pytest

pytest_plugins = ["pytester"]
# The inner sessions have no pyproject of their own: what pytest-asyncio asks to be told.
INNER = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


def inner_test(written: str) -> str:
    """An inner test module: it remembers a fresh API key and writes `written` (a Python
    expression over `key`) into api.log under its tmp_path."""
    return f"""
import secrets
from trainyard_testing.credential_leaks import remember_credential

def test_a_server_logs_something(tmp_path):
    key = "tyk_" + secrets.token_hex(4) + "_" + secrets.token_urlsafe(32)
    remember_credential(key, "API key")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "api.log").write_text("INFO GET /v1/jobs " + {written} + "\\n")
"""


def test_a_remembered_key_in_a_log_fails_the_session_naming_the_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_leaky=inner_test('"Authorization: Bearer " + key'))

    result = pytester.runpytest(*INNER)

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*credentials found in logs*", "*/server/api.log: API key tyk_????…"]
    )


def test_an_unrelated_log_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_quiet=inner_test('"Authorization: Bearer tyk_" + key[4:12] + "…"'))

    result = pytester.runpytest(*INNER)

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "credentials found in logs" not in result.stdout.str()


def test_printed_output_is_searched_and_the_whole_value_is_never_shown(
    pytester: pytest.Pytester,
) -> None:
    secret = secrets.token_urlsafe(32)
    pytester.makepyfile(
        test_printing=f"""
from trainyard_testing.credential_leaks import remember_credential

def test_prints_a_cookie():
    remember_credential({secret!r}, "session cookie")
    print("Set-Cookie: session=" + {secret!r})
"""
    )

    result = pytester.runpytest(*INNER)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test_printing.py::test_prints_a_cookie (captured stdout call): "
            f"session cookie {secret[:8]}…"
        ]
    )
    assert secret not in result.stdout.str() + result.stderr.str()


def test_each_xdist_worker_scans_its_own_files_and_the_run_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_leaky=inner_test('"Authorization: Bearer " + key'),
        test_quiet=inner_test('"no credential here"'),
    )

    result = pytester.runpytest_subprocess(*INNER, "-n", "2")

    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*credentials found in logs*",
            "*/popen-gw?/test_a_server_logs_something0/server/api.log: API key tyk_????…",
        ]
    )


def test_the_cli_credentials_file_and_the_identity_providers_log_are_not_searched(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_on_purpose="""
import secrets
from trainyard_testing.credential_leaks import exclude_from_scan, remember_credential

def test_writes_a_credential_where_it_belongs(tmp_path):
    token = secrets.token_urlsafe(32)
    remember_credential(token, "access token")
    (tmp_path / "credentials.json").write_text('{"access_token": "' + token + '"}')
    (tmp_path / "oidc-provider.log").write_text("issued " + token)
    exclude_from_scan(tmp_path / "oidc-provider.log")
    (tmp_path / "image.png").write_text(token)
"""
    )

    result = pytester.runpytest(*INNER)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
