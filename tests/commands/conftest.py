"""Fixtures of the command tests: mosquitto from the forward tests."""

from tests.forward.conftest import broker

__all__ = ["broker"]
