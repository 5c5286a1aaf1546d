"""Scheduled and queued background work, run by `habeas worker` on pgqueuer."""
