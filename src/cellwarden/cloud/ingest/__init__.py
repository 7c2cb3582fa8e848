"""MQTT ingest: shared-subscription workers that validate, store and acknowledge telemetry."""
