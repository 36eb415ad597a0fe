"""Alembic environment of the segmenter schema."""

from services.segmenter.models import metadata
from shared.migrations import run_env

run_env(metadata)
