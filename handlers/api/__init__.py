"""The JSON API under /api/v1: routes, their models, auth, errors and the OpenAPI document."""
