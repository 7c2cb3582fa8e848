"""The ``ota`` and ``cloud ota`` commands as a release engineer and an operator use them:
keys, a root and its rotation, a bundle, a device installing it, the cloud's campaign; every
refusal exits with code 2 and names the problem."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cellwarden.cli import app

runner = CliRunner()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_release_engineer_to_device(tmp_path):
    keys = {name: tmp_path / f"{name}.key" for name in ("root", "old", "new")}
    for path in keys.values():
        ok("ota", "keygen", "--out", str(path))
    assert "never replaced" in refused("ota", "keygen", "--out", str(keys["root"]))
    root1, root2 = tmp_path / "root-1.json", tmp_path / "root-2.json"
    ok("ota", "root", "init", "--root-key", f"{keys['root']}.pub", "--targets-key",
       f"{keys['old']}.pub", "--sign-with", str(keys["root"]), "--out", str(root1))  # fmt: skip
    ok("ota", "root", "rotate", "--previous", str(root1), "--root-key", f"{keys['root']}.pub",
       "--targets-key", f"{keys['new']}.pub", "--sign-with", str(keys["root"]),
       "--out", str(root2))  # fmt: skip
    assert json.loads(root2.read_text())["signed"]["version"] == 2
    assert "0 valid root signature" in refused(
        "ota", "root", "rotate", "--previous", str(root2), "--root-key", f"{keys['new']}.pub",
        "--targets-key", f"{keys['new']}.pub", "--sign-with", str(keys["new"]),
        "--out", str(tmp_path / "root-3.json"))  # fmt: skip

    factory, payload = tmp_path / "factory", tmp_path / "payload"
    factory.mkdir()
    payload.mkdir()
    (factory / "firmware.bin").write_bytes(b"\x01" * 4096)
    (payload / "firmware.bin").write_bytes(b"\x02" * 8192)
    (payload / "config.toml").write_text("[bms.balancing]\nthreshold_soc_pct = 1.5\n")
    bundle = tmp_path / "bms-1.1.0.cwb"
    build = ["ota", "build", "--version", "1.1.0", "--payload", str(payload), "--root",
             str(root1), "--root", str(root2), "--hardware", "cw-bms1810", "--architecture",
             "standalone", "--out", str(bundle)]  # fmt: skip
    assert "does not trust for targets" in refused(*build, "--key", str(keys["old"]))
    ok(*build, "--key", str(keys["new"]))
    assert '"version": "1.1.0"' in ok("ota", "inspect", str(bundle))
    (payload / "notes.txt").write_text("x")
    assert "not notes.txt" in refused(*build, "--key", str(keys["new"]))

    device = tmp_path / "device"
    init = ["ota", "device", "init", "--dir", str(device), "--device-id", "sc-1", "--hardware",
            "cw-bms1810", "--architecture", "standalone", "--root", str(root1), "--payload",
            str(factory)]  # fmt: skip
    ok(*init)
    assert "already holds a device" in refused(*init)
    output = ok("ota", "device", "run", "--dir", str(device), "--scenario", "escooter-13s-urban",
                "--duration-s", "400", "--bundle", str(bundle), "--idle-hold-s", "10")  # fmt: skip
    assert "running slot b version 1.1.0" in " ".join(output.split())
    status = " ".join(ok("ota", "device", "status", "--dir", str(device)).split())
    assert "running version 1.1.0 in slot b" in status
    assert "downgrade refused" in refused(
        "ota", "device", "run", "--dir", str(device), "--scenario", "escooter-13s-urban",
        "--duration-s", "10", "--bundle", str(bundle))  # fmt: skip


def test_operator_in_the_cloud(tmp_path):
    from tests.ota_support import make_bundle

    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    ok("cloud", "orgs", "add", "acme", "--db", db)
    ok("cloud", "fleets", "add", "scooters", "--org", "acme", "--db", db)
    for index in range(5):
        ok("cloud", "packs", "add", f"sc-{index}", "--fleet", "scooters", "--db", db)
    bundle = tmp_path / "b.cwb"
    bundle.write_bytes(make_bundle("2.0.0"))
    assert "bundle 1: version 2.0.0" in ok("cloud", "ota", "upload", str(bundle), "--org",
                                           "acme", "--db", db)  # fmt: skip
    assert "stored already" in refused("cloud", "ota", "upload", str(bundle), "--org", "acme",
                                       "--db", db)  # fmt: skip
    bundle.write_bytes(bundle.read_bytes()[:-3])
    assert "bundle truncated" in refused("cloud", "ota", "upload", str(bundle), "--org", "acme",
                                         "--db", db)  # fmt: skip
    created = ok("cloud", "ota", "campaign", "create", "--bundle", "1", "--fleet", "scooters",
                 "--canary-pct", "20", "--waves", "40", "--db", db)  # fmt: skip
    assert "canary: 1 devices, released: 1 pending" in created
    assert "paused by an operator" in ok("cloud", "ota", "campaign", "pause", "1", "--db", db)
    assert "cannot pause" in refused("cloud", "ota", "campaign", "pause", "1", "--db", db)
    shown = json.loads(ok("cloud", "ota", "campaign", "show", "1", "--json", "--db", db))
    assert shown["state"] == "paused" and len(shown["devices"]) == 5
    assert "no campaign 9" in refused("cloud", "ota", "campaign", "show", "9", "--db", db)
    token = ok("cloud", "ota", "device-token", "sc-0", "--db", db).split()[-1]
    assert len(token) >= 30
    assert "no pack 'ghost'" in refused("cloud", "ota", "device-token", "ghost", "--db", db)
