"""The HTTP API (FastAPI, OpenAPI at /api/openapi.json) and the dashboard it serves."""
