"""Device-side digitalisation: cloud connector, data logger, GPS geofences, updates."""
