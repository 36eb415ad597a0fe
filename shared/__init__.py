"""Code every Journeyman service uses: settings, the event envelope, Kafka and database plumbing."""
