"""Tables of the AGS layer: the access-token cache shared between processes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tool.db import Base, UTCDateTime


class ServiceToken(Base):
    """One platform access token, shared by every process of the installation.

    Keyed by a hash of (issuer, client_id, token URL, sorted scopes): Canvas cloud uses one
    issuer for every school, and one registration holds a token per scope set. The lease
    columns make one process at a time fetch a new token while the others wait for it,
    without holding a transaction open across the HTTP call.
    """

    __tablename__ = "service_token"

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    token_url: Mapped[str] = mapped_column(String(1000))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, sorted
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
