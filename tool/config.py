"""Settings: one frozen object, loaded once.

Sources, later ones win: `config/default.toml`, `config/<env>.toml` (env from `TOOL_ENV`,
default "development"), `config/local.toml` (git-ignored), then `TOOL_<NAME>` environment
variables (`TOOL_DATABASE_URL`, `TOOL_PORT`, …) and `SANDBOX_PORT`. Nothing else in Tally
reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from decimal import Decimal
from typing import Any, Literal, Mapping

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tool.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# A CSP source for frame-ancestors: scheme, host (an optional leading "*." wildcard) and port only.
_ORIGIN = re.compile(r"^https?://(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?/?$")


class StaticPlatform(BaseModel):
    """A platform registration written in `config/*.toml` (`[[platforms]]`), imported at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    auth_audience: str | None = None
    deployment_ids: tuple[str, ...] = ()


class Settings(BaseModel):
    """Everything configurable about a Tally process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str = "development"
    database_url: str = "sqlite:///var/tally.db"
    secret_key: str = ""
    secret_key_file: str = "keys/session.secret"
    # Empty: http://<host>:<port>, so TOOL_PORT alone moves everything (make run).
    public_base_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    keys_dir: str = "keys"
    leeway_seconds: int = Field(default=5, ge=0, le=300)
    session_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    session_max_age_seconds: int = Field(default=43200, ge=60, le=604800)
    state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    auto_activate_deployments: bool = False
    jwks_default_max_age: int = Field(default=300, ge=0)
    jwks_max_age_cap: int = Field(default=86400, ge=0)
    jwks_refetch_interval: float = Field(default=10.0, ge=0)
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Connecting to a platform gives up sooner than reading its answer (a dead host, not a slow one).
    http_connect_timeout_seconds: float = Field(default=3.05, gt=0, le=60)
    user_agent: str = ""  # empty: "Tally/<version>" (Canvas requires a User-Agent since 2026)
    ags_concurrency: int = Field(default=8, ge=1, le=64)  # parallel AGS requests per platform and process
    token_cache: Literal["database", "redis"] = "database"  # where processes share access tokens
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Score delivery (tool/delivery): rows a worker claims per step, how long a claim holds a
    # row (a dead worker's rows come free after it), how often an idle worker looks again,
    # backoff between attempts, how long "sync now" delivers inline, the thread of `run`.
    delivery_batch_size: int = Field(default=100, ge=1, le=1000)
    delivery_claim_seconds: float = Field(default=120.0, ge=5, le=3600)
    delivery_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    delivery_backoff_base_seconds: float = Field(default=2.0, gt=0, le=600)
    delivery_backoff_max_seconds: float = Field(default=900.0, gt=0, le=86400)
    delivery_sync_now_seconds: float = Field(default=20.0, ge=0, le=300)
    # A score the LMS will not take until a teacher acts there (an unpublished assignment, a
    # closed grading period, a concluded course) waits at least this long between tries.
    delivery_waiting_seconds: float = Field(default=900.0, gt=0, le=86400)
    delivery_worker_in_process: bool = True
    # Longer than the max-age our JWKS answer carries (300 s), so a platform that caches it has
    # fetched the new key before anything is signed with it.
    key_publish_lead_seconds: int = Field(default=360, ge=0)
    key_retire_grace_seconds: int = Field(default=86400, ge=0)
    # /lti/register: "pending" stores the registration with its deployment waiting for an admin,
    # "active" lets it launch at once, "off" refuses every dynamic registration.
    dynamic_registration: Literal["pending", "active", "off"] = "pending"
    # The admin console's local login (besides LTI administrators of a registration): a
    # hash from `python -m tool admin hash-password` (Argon2id; older PBKDF2 hashes still work), or
    # (development) the plain password.
    admin_password_hash: str = ""
    admin_password: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "auto": JSON lines in production, readable lines elsewhere.
    log_format: Literal["auto", "text", "json"] = "auto"
    # Where the tool's signing keys live: the database (shared by every machine, private keys
    # encrypted with a key derived from the secret) or `keys_dir` (one machine, or a shared disk).
    key_store: Literal["database", "directory"] = "database"
    # How often a process looks for keys another process rotated or pruned.
    key_reload_seconds: float = Field(default=5.0, ge=0, le=300)
    # How many proxies in front of Tally set X-Forwarded-For/-Proto/-Host/-Port (nginx: 1).
    # 0 ignores those headers (a client could forge them).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # /metrics answers these networks, or a request with `Authorization: Bearer <metrics_token>`.
    metrics_allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_token: str = ""
    # `python -m tool worker` serves its own /metrics on this port (0: off), bound to metrics_host.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # /readyz: whether delivery workers must be alive, and how old their newest heartbeat may be.
    expect_workers: bool = False
    worker_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    worker_heartbeat_max_age_seconds: float = Field(default=120.0, gt=0, le=86400)
    # Maintenance in the worker: purge and key pruning every maintenance_interval_seconds, the
    # roster refresh of every offering launched within roster_refresh_active_days once a day at
    # roster_refresh_hour (UTC); each start is delayed by up to maintenance_jitter_seconds.
    maintenance_enabled: bool = True
    maintenance_interval_seconds: float = Field(default=3600.0, ge=60, le=86400)
    maintenance_jitter_seconds: float = Field(default=300.0, ge=0, le=3600)
    launch_record_retention_days: int = Field(default=90, ge=1, le=3650)
    roster_refresh_enabled: bool = True
    roster_refresh_hour: int = Field(default=3, ge=0, le=23)
    roster_refresh_active_days: int = Field(default=30, ge=1, le=365)
    # Guard rails: TOOL_ENV=production refuses to start with any of these unless allowed here.
    production_allow_sqlite: bool = False
    production_allow_http: bool = False
    production_allow_sandbox: bool = False
    production_allow_plain_admin_password: bool = False
    production_allow_generated_secret: bool = False
    # Dynamic Registration without an invitation (anyone may start one): development and the
    # sandbox only; production refuses to start with it (tool/ops/guards.py).
    dynamic_registration_open: bool = False
    # URLs others supply (OpenID configuration, registration endpoint, JWKS, token, AGS, NRPS) are
    # fetched through tool/outbound.py: never to loopback, private, link-local or reserved
    # addresses unless listed here (a host, host:port, a network like 10.0.0.0/8, or "sandbox");
    # one total deadline per request and a cap on the bytes read.
    outbound_allowed_hosts: tuple[str, ...] = ()
    outbound_deadline_seconds: float = Field(default=30.0, gt=0, le=600)
    outbound_max_bytes: int = Field(default=10_000_000, ge=1024, le=1_000_000_000)
    # How long an invitation from `platforms invite` or the console's button stays valid (default).
    invitation_ttl_seconds: int = Field(default=7 * 86400, ge=60, le=90 * 86400)
    sandbox_enabled: bool = True
    sandbox_port: int = Field(default=8001, ge=1, le=65535)
    sandbox_mode: Literal["moodle", "canvas"] = "moodle"
    sandbox_client_id: str = "tally-sandbox"
    sandbox_deployment_id: str = "1"
    # Admin login limiter (tool/limits.py), counted before any password is hashed: failed attempts
    # per client address and for the account per window; past either, 429 with Retry-After and a
    # lockout that doubles each time (admin_login_lockout_seconds, at most ..._max_seconds).
    admin_login_client_limit: int = Field(default=5, ge=1, le=1000)
    admin_login_account_limit: int = Field(default=20, ge=1, le=10000)
    admin_login_window_seconds: float = Field(default=900.0, ge=1, le=86400)
    admin_login_lockout_seconds: float = Field(default=60.0, ge=1, le=86400)
    admin_login_lockout_max_seconds: float = Field(default=3600.0, ge=1, le=604800)
    # Rows an anonymous client may create: OIDC login initiations (login_state) per client address
    # per state_ttl_seconds, and recorded launch refusals (launch_record) per address per hour.
    # Where the limiter counts: the database (rate_limit table) or Redis at redis_url.
    limiter: Literal["database", "redis"] = "database"
    login_states_per_client: int = Field(default=2000, ge=1, le=100000)
    refusals_recorded_per_client: int = Field(default=100, ge=1, le=100000)
    # Browser-bound OIDC state (tool/web/lti_views.py): a launch from a browser that keeps the tool's
    # cookies must carry the state cookie set at its login.
    state_cookie: bool = True
    # The sandbox LMS in canvas mode offers platform storage (lti_storage_target) to the tool.
    sandbox_platform_storage: bool = True
    platforms: tuple[StaticPlatform, ...] = ()
    # Who else may show Tally in a frame (CSP frame-ancestors), besides the registered platforms
    # with an active deployment: e.g. a Canvas on its own domain, "https://canvas.example.edu".
    frame_ancestors: tuple[str, ...] = ()
    # Bonus and typo checks (tool/bonus.py): a ledger entry beyond ± this many points needs the
    # teacher's confirmation ("confirmBonus": true), as points above a maximum do.
    ledger_confirm_points: Decimal = Field(default=Decimal("1000"), gt=0, le=Decimal("9999.99"))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; SQLAlchemy would default to psycopg2.
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("metrics_allowed_networks", "outbound_allowed_hosts", "frame_ancestors", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: ValidationInfo) -> Any:
        # From the environment a list is comma-separated, e.g.
        # TOOL_METRICS_ALLOWED_NETWORKS="10.0.0.0/8, 127.0.0.1",
        # TOOL_OUTBOUND_ALLOWED_HOSTS="moodle.internal, 10.0.0.0/8",
        # TOOL_FRAME_ANCESTORS="https://a.example.edu, https://*.example.org".
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        for v in value:
            if info.field_name == "metrics_allowed_networks":
                ipaddress.ip_network(v, strict=False)
            elif info.field_name == "frame_ancestors" and not _ORIGIN.match(v):
                raise ValueError(f"{v!r} is not an origin such as https://lms.example.edu")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_base_url(self) -> "Settings":
        if not self.public_base_url:
            object.__setattr__(self, "public_base_url", f"http://{self.host}:{self.port}")
        return self

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the project root."""
        p = Path(relative)
        return p if p.is_absolute() else PROJECT_ROOT / p

    @property
    def sqlite_path(self) -> Path | None:
        """The file behind a sqlite:/// URL, resolved against the project root."""
        if not self.database_url.startswith("sqlite:///") or self.database_url == "sqlite:///:memory:":
            return None
        return self.path(self.database_url[len("sqlite:///") :])

    @property
    def resolved_database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute."""
        p = self.sqlite_path
        return f"sqlite:///{p}" if p is not None else self.database_url

    @property
    def sandbox_base_url(self) -> str:
        """Where the sandbox LMS listens (loopback, same host as the tool)."""
        return f"http://{self.host}:{self.sandbox_port}"

    def session_secret(self) -> bytes:
        """The HMAC key for session tokens: `secret_key`, else the contents of `secret_key_file`."""
        if self.secret_key:
            return self.secret_key.encode()
        f = self.path(self.secret_key_file)
        try:
            text = f.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"secret_key: not set and {f} does not exist; run `python -m tool keys generate` "
                "or set TOOL_SECRET_KEY"
            ) from None
        if len(text) < 32:
            raise ConfigError(f"secret_key: {f} holds fewer than 32 characters")
        return text.encode()


_ENV_ALIASES = {"SANDBOX_PORT": "sandbox_port"}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("TOOL_") and key != "TOOL_ENV":
            name = key[len("TOOL_") :].lower()
        elif key in _ENV_ALIASES:
            name = _ENV_ALIASES[key]
        else:
            continue
        if name in fields and name != "platforms":
            out[name] = value
    return out


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the Settings from the TOML files, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    config_dir = config_dir or PROJECT_ROOT / "config"
    env = environ.get("TOOL_ENV", "development")
    data: dict[str, Any] = {}
    for name in ("default.toml", f"{env}.toml", "local.toml"):
        data.update(_read_toml(config_dir / name))
    data["env"] = env
    data.update(_env_overrides(environ))
    data.update(overrides or {})
    try:
        return Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            env_name = f"TOOL_{str(err['loc'][0]).upper()}" if err["loc"] else ""
            problems.append(f"{where}: {err['msg']} (got {err.get('input')!r}; set in config/*.toml or {env_name})")
        raise ConfigError("Invalid settings:\n  " + "\n  ".join(problems)) from None
