"""What the AGS client and token cache tests share: a client wired to the live stack's sandbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tool.ags.client import AgsClient
from tool.ags.http import make_session
from tool.ags.score import ActivityProgress, GradingProgress, Score
from tool.ags.tokens import TokenStore
from tool.db import make_session_factory
from tool.lti.keys import KeyStore
from tool.lti.models import Registration
from tool.lti.registry import find_registration
from tool.sandbox import Platform
from tool.sandbox.server import SandboxServer
from tool.serve import ServerThread, reserve_port
from tool.stack import make_sandbox, register_platform
from tool.web import create_app
from tests.conftest import make_settings
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


@contextmanager
def keepalive_stack(engine: Engine, database_url: str, keys_dir: Path, key_path: Path, mode: str) -> Iterator[Stack]:
    """Tool + sandbox like the e2e `stack`, but the sandbox keeps connections alive as a real LMS does
    (werkzeug's server closes each one, which would hide whether a client pools them)."""
    tool_port, sandbox_port = reserve_port(), reserve_port()
    settings = make_settings(database_url, keys_dir, public_base_url=f"http://127.0.0.1:{tool_port}",
                             port=tool_port, sandbox_port=sandbox_port)
    sandbox_app = make_sandbox(settings, base_url=f"http://127.0.0.1:{sandbox_port}", mode=mode, key_path=key_path)
    platform: Platform = sandbox_app.extensions["sandbox"]
    with make_session_factory(engine)() as db:
        register_platform(db, platform)
        db.commit()
    app = create_app(settings)
    tool = ServerThread(app, port=tool_port).start()
    sandbox = SandboxServer(sandbox_app, port=sandbox_port).start()
    platform.connections.attach(sandbox.server)
    try:
        yield Stack(settings, tool, sandbox, platform, engine)  # type: ignore[arg-type]  # same url/port/stop
    finally:
        sandbox.stop()
        tool.stop()
        app.extensions["tally"].close()


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
