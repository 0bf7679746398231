"""Checks of the test harness itself: a sanitizer report or a bad exit must fail the test that
owns the server, or the guarantees the other tests rely on are hollow."""

import pytest

from conftest import Tally, sanitizer_reports


@pytest.mark.parametrize(
    "line",
    [
        "==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010",
        "==123==ERROR: LeakSanitizer: detected memory leaks",
        "src/http/server.c:10:5: runtime error: signed integer overflow",
        "SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior src/x.c:1:1",
    ],
)
def test_sanitizer_reports_are_recognised(line):
    assert sanitizer_reports('{"msg":"listening"}\n' + line + "\n") == [line]


def test_clean_log_has_no_reports():
    assert sanitizer_reports('{"level":"info","msg":"request","status":500}\n') == []


def test_stop_fails_on_a_report_in_stderr(tally_bin, tmp_path):
    t = Tally(tmp_path)
    t.start()
    try:
        with open(t.stderr_path, "a") as f:  # as if the sanitizer had written it
            f.write("==1==ERROR: AddressSanitizer: stack-buffer-overflow\n")
        with pytest.raises(AssertionError, match="sanitizer report"):
            t.stop()
        assert t.returncode == 0
    finally:
        t.kill()


def test_stop_fails_on_a_nonzero_exit(tally_bin, tmp_path):
    t = Tally(tmp_path)
    t.start()
    try:
        with pytest.raises(AssertionError, match="exited with 0, expected 3"):
            t.stop(expect_code=3)
    finally:
        t.kill()
