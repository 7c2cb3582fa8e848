"""The telemetry contract between a device's edge and the cloud: topics, record kinds, payloads.

Device code (``edge``) produces it and the cloud consumes it; neither side imports the other.
"""
