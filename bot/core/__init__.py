"""The plumbing every domain stands on: settings, the database, the clock, durations, domain errors."""
