"""Hot-path metrics: O(1), lock-free recording; summaries computed off the hot path."""
