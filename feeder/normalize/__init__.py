"""Exact conversion of exchange numbers (decimal strings, JSON numbers) to fixed-point ints."""
