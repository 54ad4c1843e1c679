"""Signals: alerts and reports arriving before anyone has declared an incident, and their triage."""
