"""schemathesis hooks for tests/openapi/schemathesis.sh (SCHEMATHESIS_HOOKS)."""

import schemathesis

# Glance's JSON-patch media types for PATCH /v2/images/{id} carry JSON documents.
schemathesis.serializer.alias(
    [
        "application/openstack-images-v2.1-json-patch",
        "application/openstack-images-v2.0-json-patch",
    ],
    "application/json",
)
