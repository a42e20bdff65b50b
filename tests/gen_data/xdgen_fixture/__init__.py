"""Targets for the generator tests (imported only in child interpreters)."""
