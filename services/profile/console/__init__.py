"""The console: server-rendered dashboard pages of the profile service (`/console`)."""
