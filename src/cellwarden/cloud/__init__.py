"""The fleet platform: ingest from MQTT, storage, alarms, the API and the web dashboard.

It sees devices only through ``cellwarden.telemetry`` (docs/cloud.md)."""
