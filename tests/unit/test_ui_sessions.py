"""Dashboard sign-in codes and sessions: once only, expiring, bounded (a fake clock)."""

from __future__ import annotations

import pytest

from edge.api import ui_sessions
from edge.api.ui_sessions import CODE_TTL, SESSION_TTL, UiLogins
from edge.core.tokens import hash_token
from edge.errors import Unauthorized
from edge.store import ADMIN, Caller


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_code_is_good_once_for_a_session_acting_as_its_maker() -> None:
    logins = UiLogins(clock=Clock())
    org = Caller.for_org("acme")
    token = logins.redeem(logins.new_code(org))
    assert logins.caller(hash_token(token)) == org
    code = logins.new_code(ADMIN)
    logins.redeem(code)
    with pytest.raises(Unauthorized):
        logins.redeem(code)


def test_codes_and_sessions_expire() -> None:
    clock = Clock()
    logins = UiLogins(clock=clock)
    code = logins.new_code(ADMIN)
    clock.now += CODE_TTL + 1
    with pytest.raises(Unauthorized):
        logins.redeem(code)
    token = logins.redeem(logins.new_code(ADMIN))
    clock.now += SESSION_TTL + 1
    assert logins.caller(hash_token(token)) is None
    assert not logins.sessions


def test_the_tables_are_bounded_oldest_first() -> None:
    logins = UiLogins(clock=Clock())
    first = logins.new_code(ADMIN)
    for _ in range(ui_sessions.MAX_CODES):
        logins.new_code(ADMIN)
    assert len(logins.codes) == ui_sessions.MAX_CODES
    with pytest.raises(Unauthorized):
        logins.redeem(first)
