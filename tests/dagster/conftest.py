"""Fixtures for the Dagster tests: the three IO-manager setups of the parity tests."""

from tests.dagster.parity import io_setup

__all__ = ["io_setup"]
