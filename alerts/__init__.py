"""Alerts: the delivery outbox, rendering, and the channels that carry alerts."""
