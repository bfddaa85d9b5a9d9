"""Composition root: runtime, app factory, CLI, scheduler."""
