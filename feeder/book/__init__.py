"""Order books: levels, sequence rules per exchange, and the per-symbol synchronizer."""
