"""Journey service: the journey DSL, triggers, instances, steps and dispatch requests."""
