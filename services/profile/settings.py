"""Settings of the profile service (same `JOURNEYMAN_` prefix as the shared ones)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class ProfileSettings(Settings):
    unsubscribe_link_max_age_s: int = Field(
        default=365 * 24 * 3600,
        description="How long an unsubscribe or preference link keeps working (seconds).",
    )
    search_limit: int = Field(
        default=50, description="Most profiles a trait search returns (it scans the table)."
    )


def profile_settings(settings: Settings | None) -> ProfileSettings:
    """Accept the shared Settings (tests, the stack) and add the profile fields' defaults."""
    if isinstance(settings, ProfileSettings):
        return settings
    if settings is None:
        return ProfileSettings(service_name="profile")
    return ProfileSettings.model_validate(settings.model_dump())
