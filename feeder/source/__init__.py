"""Message sources that feed the publisher (the synthetic one; exchanges come through books)."""
