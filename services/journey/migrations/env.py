"""Alembic environment of the journey schema."""

from services.journey.models import metadata
from shared.migrations import run_env

run_env(metadata)
