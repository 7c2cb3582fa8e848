"""Root metadata: which keys may sign bundles (the ``targets`` role) and which may sign the
next root (the ``root`` role), each with a threshold — the trust a device is provisioned with.

Rotation and revocation follow TUF: root version N+1 is valid when a threshold of version N's
root keys and a threshold of its own root keys sign it. Dropping a key from the ``targets``
role revokes it: once a device holds the new root, bundles signed by that key are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cellwarden.ota.keys import KEYTYPE, PublicKey, SigningKey
from cellwarden.ota.signed import (
    MetadataError,
    envelope_of,
    format_time,
    parse_time,
    sign,
    valid_signers,
)

ROOT_TYPE = "cellwarden-root"
SPEC_VERSION = 1
ROLES = ("root", "targets")


@dataclass(frozen=True)
class Role:
    keyids: frozenset[str]
    threshold: int


@dataclass(frozen=True)
class Root:
    """A root version whose structure has been checked (not yet its signatures)."""

    envelope: dict[str, Any]
    version: int
    expires_s: float
    keys: dict[str, PublicKey]
    roles: dict[str, Role]

    def role_keys(self, role: str) -> dict[str, PublicKey]:
        return {keyid: self.keys[keyid] for keyid in self.roles[role].keyids}

    def signed_by(self, envelope: dict[str, Any], role: str) -> set[str]:
        """Key ids of ``role`` that validly signed ``envelope``; MetadataError when fewer than
        the role's threshold did."""
        good = valid_signers(envelope, self.role_keys(role))
        needed = self.roles[role].threshold
        if len(good) < needed:
            others = {entry.get("keyid") for entry in envelope.get("signatures", [])
                      if isinstance(entry, dict)} - good  # fmt: skip
            untrusted = sorted(k for k in others if isinstance(k, str) and k not in self.keys)
            hint = (
                f"; signed by key(s) {', '.join(k[:16] for k in untrusted)} that root "
                f"v{self.version} does not trust for {role} (unknown or revoked)"
                if untrusted else ""
            )  # fmt: skip
            raise MetadataError(
                f"{len(good)} valid {role} signature(s) of {needed} needed by root "
                f"v{self.version}{hint}"
            )
        return good


def parse_root(document: Any) -> Root:
    """The structure of a root envelope; MetadataError naming the first problem."""
    envelope = envelope_of(document, "root metadata", ROOT_TYPE)
    signed = envelope["signed"]
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MetadataError("root metadata: 'version' must be an integer ≥ 1")
    what = f"root v{version}"
    expires_s = parse_time(signed.get("expires"), f"{what} 'expires'")
    raw_keys = signed.get("keys")
    if not isinstance(raw_keys, dict):
        raise MetadataError(f"{what}: 'keys' must be an object of key id → key")
    keys = {}
    for keyid, entry in raw_keys.items():
        if not isinstance(entry, dict) or entry.get("keytype") != KEYTYPE:
            raise MetadataError(f"{what}: key {keyid[:16]} is not an {KEYTYPE} key")
        try:
            key = PublicKey(bytes.fromhex(entry.get("public", "")))
        except (TypeError, ValueError):
            raise MetadataError(f"{what}: key {keyid[:16]} has no hex 'public' value") from None
        if len(key.raw) != 32 or key.keyid != keyid:
            raise MetadataError(f"{what}: key id {keyid[:16]} does not match its public key")
        keys[keyid] = key
    roles = {}
    for name in ROLES:
        entry = (signed.get("roles") or {}).get(name)
        if not isinstance(entry, dict):
            raise MetadataError(f"{what}: role {name!r} is missing")
        keyids, threshold = entry.get("keyids"), entry.get("threshold")
        if not isinstance(keyids, list) or not all(k in keys for k in keyids):
            raise MetadataError(f"{what}: role {name!r} names keys the root does not list")
        if not isinstance(threshold, int) or not 1 <= threshold <= len(set(keyids)):
            raise MetadataError(
                f"{what}: role {name!r} threshold must be 1..{len(set(keyids))} (its key count)"
            )
        roles[name] = Role(frozenset(keyids), threshold)
    return Root(envelope, version, expires_s, keys, roles)


def make_root(
    version: int,
    expires_s: float,
    root_keys: Sequence[PublicKey],
    targets_keys: Sequence[PublicKey],
    signers: Iterable[SigningKey],
    root_threshold: int = 1,
    targets_threshold: int = 1,
) -> dict[str, Any]:
    """A signed root envelope (the caller passes the old and new root keys when rotating)."""
    keys = {key.keyid: {"keytype": KEYTYPE, "public": key.raw.hex()}
            for key in (*root_keys, *targets_keys)}  # fmt: skip
    signed = {
        "_type": ROOT_TYPE,
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires_s),
        "keys": keys,
        "roles": {
            "root": {"keyids": sorted({k.keyid for k in root_keys}), "threshold": root_threshold},
            "targets": {"keyids": sorted({k.keyid for k in targets_keys}),
                        "threshold": targets_threshold},
        },
    }  # fmt: skip
    envelope = sign(signed, signers)
    parse_root(envelope)
    return envelope


def update_root(trusted: Root, chain: Iterable[Any], now_s: float) -> Root:
    """The newest root reachable from ``trusted`` through ``chain`` (versions above the trusted
    one, each signed by its predecessor's and its own root keys); MetadataError on a gap, a
    bad signature or when the result has expired."""
    newer = {}
    for document in chain:
        root = parse_root(document)
        if root.version > trusted.version:
            newer[root.version] = root
    current = trusted
    for version in sorted(newer):
        if version != current.version + 1:
            raise MetadataError(f"root chain jumps from v{current.version} to v{version}")
        candidate = newer[version]
        current.signed_by(candidate.envelope, "root")
        candidate.signed_by(candidate.envelope, "root")
        current = candidate
    if current.expires_s <= now_s:
        raise MetadataError(f"root v{current.version} expired at {format_time(current.expires_s)}")
    return current
