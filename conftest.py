"""Root conftest: shared fixtures live in tests/fixtures/ (one module per service)."""

import os

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.project",
    "tests.fixtures.dagster",
    "tests.fixtures.redis",
]

# Tests never talk to real AWS: a stray credential chain must not leak in.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
