"""The bundle format and its trust: signatures over canonical JSON, thresholds, root rotation
and revocation (TUF's rules), checked with keys made here and documents changed by hand."""

from __future__ import annotations

import json
import time

import pytest
from tests.ota_support import DAY_S, HARDWARE, Signer, firmware_image, make_bundle

from cellwarden.ota.bundle import LENGTH, MAGIC, BundleError, inspect_bundle
from cellwarden.ota.keys import SigningKey, load_public_key, load_signing_key
from cellwarden.ota.root import make_root, parse_root, update_root
from cellwarden.ota.signed import MetadataError, canonical, sign, valid_signers

YEAR_S = 365 * DAY_S


def reassemble(bundle: bytes, edit) -> bytes:
    """The bundle with its header passed through ``edit`` and written out anew."""
    length = LENGTH.unpack(bundle[len(MAGIC) : len(MAGIC) + 4])[0]
    start = len(MAGIC) + 4
    header = json.loads(bundle[start : start + length])
    raw = edit(header)
    return MAGIC + LENGTH.pack(len(raw)) + raw + bundle[start + length :]


def test_bundle_round_trip_carries_what_was_built():
    bundle = make_bundle("2.3.4", min_version="2.0")
    info = inspect_bundle(bundle)
    manifest = info.manifest
    assert (manifest.version, manifest.min_version, manifest.hardware) == (
        "2.3.4", "2.0", (HARDWARE,))  # fmt: skip
    assert [f.path for f in manifest.files] == ["firmware.bin", "config.toml"]
    assert manifest.files[0].size == len(firmware_image("2.3.4"))
    assert info.size == len(bundle)


def test_signature_covers_content_not_formatting():
    bundle = make_bundle()
    pretty = reassemble(bundle, lambda header: json.dumps(header, indent=3).encode())
    assert inspect_bundle(pretty).manifest.version == "1.1.0"

    def change_version(header):
        header["manifest"]["signed"]["version"] = "9.9.9"
        return json.dumps(header).encode()

    with pytest.raises(BundleError, match="0 valid targets signature"):
        inspect_bundle(reassemble(bundle, change_version))


def test_key_files_round_trip(tmp_path):
    key = SigningKey.generate()
    public_path = key.save(tmp_path / "k")
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"
    assert load_signing_key(tmp_path / "k").keyid == key.keyid
    assert load_public_key(public_path) == key.public
    with pytest.raises(FileExistsError):
        key.save(tmp_path / "k")
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(ValueError, match="junk: not an unencrypted PEM private key"):
        load_signing_key(tmp_path / "junk")


def test_threshold_counts_distinct_valid_keys():
    root_key = SigningKey.generate()
    targets = [SigningKey.generate() for _ in range(3)]
    root = make_root(1, time.time() + YEAR_S, [root_key.public], [k.public for k in targets],
                     [root_key], targets_threshold=2)  # fmt: skip
    trusted = parse_root(root)
    document = {"_type": "x", "n": 1}
    one = sign(document, targets[:1])
    with pytest.raises(MetadataError, match="1 valid targets signature"):
        trusted.signed_by(one, "targets")
    twice = {"signed": document, "signatures": one["signatures"] * 2}
    with pytest.raises(MetadataError, match="1 valid targets signature"):
        trusted.signed_by(twice, "targets")
    assert len(trusted.signed_by(sign(document, targets[1:]), "targets")) == 2
    assert valid_signers(sign(document, [root_key]), trusted.role_keys("targets")) == set()


def test_root_rotation_needs_old_and_new_root_keys():
    old_key, new_key, target = (SigningKey.generate() for _ in range(3))
    now = time.time()
    v1 = parse_root(make_root(1, now + YEAR_S, [old_key.public], [target.public], [old_key]))
    only_new = make_root(2, now + YEAR_S, [new_key.public], [target.public], [new_key])
    with pytest.raises(MetadataError, match="0 valid root signature"):
        update_root(v1, [only_new], now)
    both = make_root(2, now + YEAR_S, [new_key.public], [target.public], [old_key, new_key])
    assert update_root(v1, [both], now).version == 2
    v3 = make_root(3, now + YEAR_S, [new_key.public], [target.public], [new_key])
    with pytest.raises(MetadataError, match="jumps from v1 to v3"):
        update_root(v1, [v3], now)
    assert update_root(v1, [both, v3], now).version == 3
    with pytest.raises(MetadataError, match="root v3 expired"):
        update_root(v1, [both, v3], now + 2 * YEAR_S)


def test_root_structure_errors_are_named():
    key = SigningKey.generate()
    root = make_root(1, time.time() + YEAR_S, [key.public], [key.public], [key])
    wrong_id = json.loads(canonical(root))
    keyid = next(iter(wrong_id["signed"]["keys"]))
    wrong_id["signed"]["keys"][keyid]["public"] = SigningKey.generate().public.raw.hex()
    with pytest.raises(MetadataError, match="does not match its public key"):
        parse_root(wrong_id)
    zero = json.loads(canonical(root))
    zero["signed"]["roles"]["targets"]["threshold"] = 0
    with pytest.raises(MetadataError, match=r"threshold must be 1\.\.1"):
        parse_root(zero)


def test_revoked_key_refused_once_the_rotation_is_known():
    signer = Signer()
    revoked = signer.targets_key
    successor = SigningKey.generate()
    now = time.time()
    v2 = make_root(2, now + YEAR_S, [signer.root_key.public], [successor.public],
                   [signer.root_key])  # fmt: skip
    trusted = parse_root(signer.roots[0])
    bundle = make_bundle(signer=signer, roots=[signer.roots[0], v2], keys=[revoked])
    with pytest.raises(BundleError, match="does not trust for targets"):
        inspect_bundle(bundle)
    good = make_bundle(signer=signer, roots=[signer.roots[0], v2], keys=[successor])
    assert inspect_bundle(good).signer_keyids == (successor.keyid,)
    assert update_root(trusted, [v2], now).version == 2


def test_bundle_without_payload_or_with_unknown_files_is_not_built():
    with pytest.raises(BundleError, match=r"not kernel\.img"):
        make_bundle(files={"kernel.img": b"x"})
