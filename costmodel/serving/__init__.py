"""Serving: engine profiles, continuous batching, the online simulator and capacity planning."""
