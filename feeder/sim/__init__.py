"""The local exchange simulator: each exchange's real protocol, served on loopback."""
