"""The headless browser fixtures for the sandbox page's tests."""

from tests.sandbox.browser import browser, screenshots

__all__ = ["browser", "screenshots"]
