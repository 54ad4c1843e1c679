"""Fakes of the platforms TARS changes (Kubernetes, GitHub), shared by the tests and the sandbox's demo world."""
