"""Alembic environment of the channels schema."""

from services.channels.models import metadata
from shared.migrations import run_env

run_env(metadata)
