"""Incidents: the record, its lifecycle rules, the command parser, the flows and the post-mortem."""
