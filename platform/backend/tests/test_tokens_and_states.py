"""The callback token format and the state machine's rules, checked directly."""

from __future__ import annotations

import itertools

import pytest

from trainyard.callbacks.tokens import InvalidToken, SigningKeys, issue, verify
from trainyard_workflows.job_states import JobState, TransitionVerdict, judge

FORWARD = [JobState.PENDING, JobState.VALIDATING, JobState.STARTING, JobState.RUNNING]
TERMINAL = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]


KEYS = SigningKeys.of("k1", "secret")
LATER = 2_000_000_000  # an expiry in 2033


def test_a_token_names_its_purpose_job_attempt_expiry_and_key_and_verifies() -> None:
    token = issue(KEYS, "job_abc", 3, LATER)

    assert token.startswith(f"callback.job_abc.3.{LATER}.k1.")
    claims = verify(KEYS, token)
    assert (claims.job_id, claims.attempt, claims.expires_at) == ("job_abc", 3, LATER)
    assert issue(KEYS, "job_abc", 3, LATER) == token  # re-issuing gives the same token


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("job_abc", "job_abd"),
        lambda t: t.replace(".3.", ".4."),
        lambda t: t.replace(f".{LATER}.", f".{LATER + 1}."),
        lambda t: t.replace("callback.", "artifact."),
        lambda t: t.replace(".k1.", ".k2."),
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t + "=",
        lambda t: "",
        lambda t: "job_abc.3",
        lambda t: t.split(".", 1)[1],
    ],
)
def test_a_tampered_token_does_not_verify(tamper: object) -> None:
    assert callable(tamper)
    token = issue(KEYS, "job_abc", 3, LATER)

    with pytest.raises(InvalidToken):
        verify(KEYS, tamper(token))


def test_a_token_signed_with_another_secret_does_not_verify() -> None:
    with pytest.raises(InvalidToken):
        verify(KEYS, issue(SigningKeys.of("k1", "other"), "job_abc", 1, LATER))


def test_a_token_is_refused_from_its_expiry_on() -> None:
    token = issue(KEYS, "job_abc", 1, LATER)

    assert verify(KEYS, token, now=LATER - 1).attempt == 1
    with pytest.raises(InvalidToken, match="expired"):
        verify(KEYS, token, now=LATER)


def test_a_token_of_another_purpose_is_refused_even_when_genuine() -> None:
    token = issue(KEYS, "job_abc", 1, LATER, purpose="artifact-read")

    assert verify(KEYS, token, purpose="artifact-read").job_id == "job_abc"
    with pytest.raises(InvalidToken, match="not a 'callback' token"):
        verify(KEYS, token)


def test_rotation_accepts_the_previous_key_until_it_is_dropped() -> None:
    before = SigningKeys.of("k1", "old secret")
    during = SigningKeys.of("k2", "new secret", {"k1": "old secret"})
    after = SigningKeys.of("k2", "new secret")
    old_token = issue(before, "job_abc", 1, LATER)
    new_token = issue(during, "job_abc", 2, LATER)

    assert new_token.split(".")[4] == "k2"  # signed with the new key
    assert verify(during, old_token).attempt == 1
    assert verify(after, new_token).attempt == 2
    with pytest.raises(InvalidToken, match="no longer accepts"):
        verify(after, old_token)


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
