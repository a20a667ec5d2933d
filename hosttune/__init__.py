"""hosttune."""
