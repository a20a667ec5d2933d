"""The receiver: join groups, track sequences per channel, measure latency."""
