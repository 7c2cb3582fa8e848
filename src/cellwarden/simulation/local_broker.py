"""A Mosquitto broker of one's own on 127.0.0.1: free ports, passwords, an ACL, TLS, persistence.

Used by the tests, the benchmarks and demos; a real deployment points the edge at its own
broker instead. The ACL ``DEVICE_ACL`` lets each device write only under its own id and read
only its own command topic; the ``cloud`` user reads and writes everything under ``cw/``.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEVICE_ACL = """\
user cloud
topic readwrite cw/#
topic read $SYS/#

pattern write cw/+/%u/+
pattern read cw/+/%u/cmd
"""


@dataclass(frozen=True)
class TlsFiles:
    """The broker's certificate chain (PEM files)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalBroker:
    """A mosquitto process configured in ``directory``; ``start``/``stop``/``restart``."""

    def __init__(
        self,
        directory: Path,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: TlsFiles | None = None,
        persistence: bool = True,
    ) -> None:
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(executable).exists():
            raise FileNotFoundError(
                "mosquitto is not installed (Debian: apt-get install mosquitto)"
            )
        self.executable = executable
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.process: subprocess.Popen | None = None
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text(self._config(users, acl, tls, persistence))

    def _config(self, users, acl, tls, persistence) -> str:
        d = self.directory
        lines = [
            f"user {getpass.getuser()}",  # as root, mosquitto would otherwise drop to 'mosquitto'
            "per_listener_settings false",
            f"allow_anonymous {'false' if users else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {d}/",
            "autosave_interval 1",
            "sys_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 64",
            f"log_dest file {d / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} 127.0.0.1",
        ]
        if users:
            passwords = d / "passwd"
            passwords.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            passwords.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True,
                           capture_output=True)  # fmt: skip
            lines.insert(1, f"password_file {passwords}")
        if acl:
            (d / "acl").write_text(acl)
            lines.insert(1, f"acl_file {d / 'acl'}")
        if tls:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
            ]
        return "\n".join(lines) + "\n"

    def url(self, username: str | None = None, password: str | None = None, tls=False) -> str:
        credentials = f"{username}:{password}@" if username else ""
        if tls:
            return f"mqtts://{credentials}127.0.0.1:{self.tls_port}"
        return f"mqtt://{credentials}127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        log = open(self.directory / "stderr.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.executable, "-c", str(self.config)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}: " + self._logs()[-2000:]
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on 127.0.0.1:{self.port}")

    def _logs(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.directory / "stderr.log", self.directory / "mosquitto.log")
            if path.exists()
        )

    def stop(self) -> None:
        """Terminate (the broker saves its persistent sessions on the way out)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
