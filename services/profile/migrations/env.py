"""Alembic environment of the profile schema."""

from services.profile.models import metadata
from shared.migrations import run_env

run_env(metadata)
