"""`tars sandbox` and its Slack emulator: for laptops and tests, never imported by production code."""
