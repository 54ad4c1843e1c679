"""Remediation: requests, approvals, execution on the platforms, rollback advice and code fixes."""
