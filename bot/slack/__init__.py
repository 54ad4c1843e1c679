"""Everything TARS shows in Slack: Block Kit and mrkdwn, escaping, and Slack's limits."""
