"""Shared fixtures for the Python compatibility suite.

The broker address comes from RINGBOLT_BOOTSTRAP (default 127.0.0.1:9092). Topic and group names
are unique per test so the suite can run repeatedly against one long-lived broker. Tests that need
features from other issues carry a marker and are skipped unless their RINGBOLT_COMPAT_* variable
is 1 (see pytest.ini).
"""

import os
import time
import uuid

import pytest

GATES = {
    "groups": "RINGBOLT_COMPAT_GROUPS",
    "compression": "RINGBOLT_COMPAT_COMPRESSION",
    "idempotence": "RINGBOLT_COMPAT_IDEMPOTENCE",
    "legacy": "RINGBOLT_COMPAT_LEGACY",
    "transactions": "RINGBOLT_COMPAT_TRANSACTIONS",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, env in GATES.items():
            if marker in item.keywords and os.environ.get(env) != "1":
                item.add_marker(pytest.mark.skip(reason=f"{marker}: set {env}=1 to run"))


@pytest.fixture(scope="session")
def bootstrap():
    return os.environ.get("RINGBOLT_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture
def unique():
    """unique("prefix") -> a topic/group name no other run uses."""

    def make(prefix):
        return f"{prefix}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"

    return make
