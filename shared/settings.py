"""Configuration from the environment: one `JOURNEYMAN_` prefix plus the usual DATABASE_URL and
KAFKA_BOOTSTRAP_SERVERS, so the same image runs on a laptop, in docker-compose and in Kubernetes."""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["read", "write"]


class ApiKey(BaseModel):
    """An ops API key; `write` implies `read`."""

    key: SecretStr
    scope: Scope = "read"


class Settings(BaseSettings):
    """Settings shared by every service; services read only the fields they need."""

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYMAN_", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/journeyman",
        validation_alias=AliasChoices("DATABASE_URL", "JOURNEYMAN_DATABASE_URL"),
        description="PostgreSQL URL; postgres:// and postgresql:// also work (run on asyncpg).",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "JOURNEYMAN_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer; needs InitProducerId, which the embedded Tansu lacks.",
    )
    # Broker security (Apache Kafka in production): TLS, SASL or both, for every client.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism, with SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA bundle the brokers' certificates are checked against."
    )
    kafka_ssl_certfile: str | None = Field(
        default=None, description="Client certificate (PEM), for brokers that require mTLS."
    )
    kafka_ssl_keyfile: str | None = Field(default=None, description="Client certificate's key.")
    kafka_session_timeout_ms: int = Field(default=10_000, description="Consumer group session.")
    kafka_max_batch: int = Field(default=2_000, description="Most records handled in one batch.")
    kafka_poll_timeout_ms: int = Field(default=100, description="Longest wait for a batch.")
    api_keys: list[ApiKey] = Field(
        default_factory=list, description='Ops keys, JSON: [{"key": "...", "scope": "write"}].'
    )
    write_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Segment-style write keys for the ingestion API (JSON list).",
    )
    service_name: str = Field(default="journeyman", description="Set by each service at start.")
    link_secret: SecretStr = Field(
        default=SecretStr("dev-only-link-secret-change-me"),
        description="Signs customer links (unsubscribe, preferences, tracking, surveys).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL customers' links point at (the profile service's public address).",
    )
    outbox_poll_interval_s: float = Field(
        default=0.2, description="Longest delay before the outbox relay looks for new rows."
    )
    outbox_batch: int = Field(
        default=10_000,
        description="Most outbox records the relay publishes in one transaction. A pass takes "
        "what is waiting, so this caps a backlog's passes, never delays a small one.",
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    journeys_dir: str = Field(default="journeys", description="Where journey YAML files live.")
    segments_dir: str = Field(default="segments", description="Where segment YAML files live.")
    templates_dir: str = Field(default="templates", description="Where message templates live.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP relay host.")
    smtp_port: int = Field(default=2525, description="SMTP relay port.")
    smtp_username: str | None = Field(default=None, description="SMTP AUTH user, if any.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP AUTH password.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP session with STARTTLS."
    )
    email_from: str = Field(default="Journeyman Shop <shop@journeyman.local>", description="From.")

    # Measurement and the console (profile service): where the other services answer, the key
    # the console calls them with, and how long survey links and console sessions last.
    segmenter_url: str = Field(
        default="http://127.0.0.1:8002", description="Segmenter base URL (console lookups)."
    )
    journey_url: str = Field(
        default="http://127.0.0.1:8003", description="Journey service base URL (journey stats)."
    )
    channels_url: str = Field(
        default="http://127.0.0.1:8004", description="Channels base URL (message stats)."
    )
    services_api_key: SecretStr | None = Field(
        default=None,
        description="Ops key the console sends to the other services; default: the first of "
        "api_keys.",
    )
    survey_link_max_age_s: int = Field(
        default=30 * 24 * 3600, description="How long a survey link keeps working (seconds)."
    )
    console_session_max_age_s: int = Field(
        default=8 * 3600, description="How long a console login lasts (seconds)."
    )

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, url: str) -> str:
        """Accept the URL forms ops tools print and run them on asyncpg."""
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url


def new_key(prefix: str) -> str:
    """A random key that says what it is for when it shows up in a log or a config file."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"
