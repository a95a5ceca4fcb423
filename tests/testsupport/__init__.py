"""Shared test support: launchers and fixtures for the real services the suite uses."""
