"""Emulator fixtures for the emulator tests that need no broker but run it as a program
(subprocess) or drive it with third-party code."""

from tests.unit.emulator.conftest import (  # noqa: F401  (re-exported fixtures)
    client,
    emulator,
    emulator_keys,
    http,
    start_emulator,
)
