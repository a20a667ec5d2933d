"""feeder."""
