"""The over-the-air update contract between the build host, the cloud and a device's edge:
signing keys, root metadata (who may sign what), the signed manifest and the bundle file.

The build tool writes bundles, the cloud inspects and serves them, the edge verifies and
installs them (``cellwarden.edge.ota_*``); this package imports nothing of theirs.
docs/ota.md describes the format.
"""
