"""The way in: the HTTP server, the front door that checks Slack's requests, and button binding."""
