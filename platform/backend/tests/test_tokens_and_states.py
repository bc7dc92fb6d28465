"""The callback token format and the state machine's rules, checked directly."""

from __future__ import annotations

import itertools

import pytest

from trainyard.callbacks.tokens import InvalidToken, issue, verify
from trainyard_workflows.job_states import JobState, TransitionVerdict, judge

FORWARD = [JobState.PENDING, JobState.VALIDATING, JobState.STARTING, JobState.RUNNING]
TERMINAL = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]


def test_a_token_names_its_job_and_attempt_and_verifies() -> None:
    token = issue("secret", "job_abc", 3)

    assert token.startswith("job_abc.3.")
    claims = verify("secret", token)
    assert (claims.job_id, claims.attempt) == ("job_abc", 3)
    assert issue("secret", "job_abc", 3) == token  # re-issuing gives the same token


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("job_abc", "job_abd"),
        lambda t: t.replace(".3.", ".4."),
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t + "=",
        lambda t: "",
        lambda t: "job_abc.3",
    ],
)
def test_a_tampered_token_does_not_verify(tamper: object) -> None:
    assert callable(tamper)
    token = issue("secret", "job_abc", 3)

    with pytest.raises(InvalidToken):
        verify("secret", tamper(token))


def test_a_token_signed_with_another_secret_does_not_verify() -> None:
    with pytest.raises(InvalidToken):
        verify("secret", issue("other", "job_abc", 1))


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.combinations([*FORWARD, TERMINAL[0]], 2))
)
def test_every_forward_move_applies(current: JobState, target: JobState) -> None:
    assert judge(current, target) is TransitionVerdict.APPLY


@pytest.mark.parametrize(("current", "target"), list(itertools.product(FORWARD, TERMINAL)))
def test_any_live_state_may_end(current: JobState, target: JobState) -> None:
    assert judge(current, target) is TransitionVerdict.APPLY


@pytest.mark.parametrize(("target", "current"), list(itertools.combinations(FORWARD, 2)))
def test_every_backward_move_is_refused(current: JobState, target: JobState) -> None:
    assert judge(current, target) is TransitionVerdict.BACKWARDS


@pytest.mark.parametrize(("current", "target"), list(itertools.product(TERMINAL, list(JobState))))
def test_nothing_follows_a_terminal_state(current: JobState, target: JobState) -> None:
    assert judge(current, target) is TransitionVerdict.TERMINAL


@pytest.mark.parametrize("state", FORWARD)
def test_asking_for_the_current_live_state_is_recognised_as_a_repeat(state: JobState) -> None:
    assert judge(state, state) is TransitionVerdict.ALREADY
