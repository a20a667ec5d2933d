"""The running feeder: one asyncio task per exchange connection, all publishing through one
publisher and send path."""
