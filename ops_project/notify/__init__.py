"""Alerts: the notifier (Slack-compatible webhook, deduplicated, outbox) and secret scrubbing."""
