"""What the AGS client and token cache tests share: a client wired to the live stack's sandbox
(the `ags` fixture of tests/e2e/conftest.py; `new_stack(mode, keepalive=True)` starts a stack whose
sandbox keeps connections alive, as a real LMS does)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tool.ags.client import AgsClient
from tool.ags.http import make_session
from tool.ags.score import ActivityProgress, GradingProgress, Score
from tool.ags.tokens import TokenStore
from tool.db import make_session_factory
from tool.lti.keys import KeyStore
from tool.lti.models import Registration
from tool.lti.registry import find_registration
from tool.sandbox import Platform

if TYPE_CHECKING:  # conftest imports this module
    from tests.e2e.conftest import Stack

WEEK_1 = 1  # the sandbox's seeded line item of rl-1, maximum 100


@dataclass
class Ags:
    """An AgsClient talking to the stack's sandbox, and the registration it uses."""

    stack: Stack
    client: AgsClient
    reg: Registration
    extra: list[AgsClient] = field(default_factory=list)

    @property
    def platform(self) -> Platform:
        return self.stack.platform

    def lineitem_url(self, item_id: int = WEEK_1) -> str:
        return self.platform.paths.lineitem_url(item_id)

    def student(self, n: int = 0) -> str:
        return self.platform.students[n].id

    def another_client(self, **settings: Any) -> AgsClient:
        """A second client with its own memory and HTTP session: another process of the installation."""
        client = new_client(self.stack, **settings)
        self.extra.append(client)
        return client

    def close(self) -> None:
        for client in [self.client, *self.extra]:
            client.close()
            client.http.close()


def new_client(stack: Stack, *, token_store: TokenStore | None = None, **settings: Any) -> AgsClient:
    """A client on the stack's database and keys; `settings` override the stack's."""
    s = stack.settings.model_copy(update=settings) if settings else stack.settings
    return AgsClient(settings=s, session_factory=make_session_factory(stack.engine),
                     keys=KeyStore(s.path(s.keys_dir)), http=make_session(s), token_store=token_store)


def open_ags(stack: Stack, **settings: Any) -> Ags:
    """A client for the stack's sandbox and the sandbox's registration in Tally."""
    with stack.session() as db:
        reg = find_registration(db, issuer=stack.platform.issuer, client_id=stack.platform.client_id)
        assert reg is not None
        db.expunge(reg)
    return Ags(stack, new_client(stack, **settings), reg)


def graded(user_id: str, given: str | int, maximum: str | int = 10, *, comment: str | None = None,
           timestamp: dt.datetime | None = None) -> Score:
    """A FullyGraded, Completed score."""
    return Score(user_id=user_id, activity_progress=ActivityProgress.COMPLETED,
                 grading_progress=GradingProgress.FULLY_GRADED, score_given=Decimal(given),
                 score_maximum=Decimal(maximum), comment=comment, timestamp=timestamp)
