"""Over-the-air update campaigns: the staged-rollout rules (docs/ota-cloud.md)."""
