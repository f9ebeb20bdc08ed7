"""Formats: one handler per on-disk format, and the registry that picks by type."""

from pivot_dagster.formats.base import FormatHandler as FormatHandler
from pivot_dagster.formats.base import UnserializableValue as UnserializableValue
from pivot_dagster.formats.expect import Expected as Expected
from pivot_dagster.formats.expect import refusal as refusal
from pivot_dagster.formats.registry import by_name as by_name
from pivot_dagster.formats.registry import choose as choose
from pivot_dagster.formats.registry import register as register
