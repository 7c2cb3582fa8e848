"""Where a serial console listens: a real serial device (a pyserial URL or path), or a
pseudo-terminal that a terminal program (screen, picocom, minicom) opens like the board's
RS232 port."""

from __future__ import annotations

import fcntl
import os
import termios
import tty

import serial

from cellwarden.comms.console import SerialPort

BAUD_RATE = 115_200


class PseudoTerminal:
    """The board's end of a pseudo-terminal pair; ``device`` is the end a user opens."""

    def __init__(self) -> None:
        self._fd, self._user_fd = os.openpty()
        self.device = os.ttyname(self._user_fd)
        tty.setraw(self._user_fd)  # no echo or line editing on the user's side
        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    @property
    def in_waiting(self) -> int:
        buffer = bytearray(4)
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, buffer)
        except OSError:
            return 0
        return int.from_bytes(buffer, "little")

    def read(self, size: int = 1) -> bytes:
        try:
            return os.read(self._fd, size)
        except BlockingIOError:
            return b""

    def write(self, data: bytes, /) -> int:
        return os.write(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._user_fd)


def open_console_port(spec: str) -> tuple[SerialPort, str]:
    """``pty`` makes a pseudo-terminal; anything else is a pyserial URL or device path.
    Returns the port and the name a user connects to."""
    if spec == "pty":
        terminal = PseudoTerminal()
        return terminal, terminal.device
    try:
        return serial.serial_for_url(spec, baudrate=BAUD_RATE, timeout=0), spec
    except (serial.SerialException, ValueError) as error:
        raise ValueError(f"cannot open the console port {spec!r}: {error}") from error
