"""The SunSpec Modbus server: a battery system's ``SystemState`` as SunSpec models 1, 802, 803
and 804 over Modbus TCP or Modbus RTU (RS485), for inverters, energy managers and SCADA.

The server runs its own asyncio loop in a background thread. ``update(state)`` encodes the state
and swaps the new register image in under a lock that every request takes too, so a client never
reads a half-updated image. Writes to the command points (802 SetOp, 803 StrSetEna/StrSetCon, 804
SetEna/SetCon) call the ``SystemControl``; any other write is answered with a Modbus exception
and changes nothing. Requests for another unit id get no answer on RTU (the bus may hold other
devices) and exception 0B on TCP. See docs/modbus-sunspec.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from cellwarden.bms.system_state import SystemControl, SystemRating, SystemState
from cellwarden.comms.sunspec_map import (
    BASE_ADDRESS,
    LAST_ADDRESS,
    Action,
    Command,
    SunSpecMap,
    WriteRefusedError,
)

log = logging.getLogger(__name__)

REGISTER_FUNCTIONS = frozenset({3, 4, 6, 16, 22, 23})  # reads, writes, mask write, read/write
MAX_UNIT_ID = 247


@dataclass(frozen=True)
class TcpEndpoint:
    """Modbus TCP: ``host`` to listen on (``0.0.0.0`` for every interface), ``port`` 0 for
    any free one."""

    host: str = "127.0.0.1"
    port: int = 502

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"TCP port {self.port} is outside 0..65535")

    def __str__(self) -> str:
        return f"Modbus TCP {self.host}:{self.port}"


@dataclass(frozen=True)
class RtuEndpoint:
    """Modbus RTU on a serial device (RS485 adapter, ``/dev/ttyUSB0``, a pyserial URL); 8 data
    bits, by default the Modbus serial-line standard's 19200 baud, even parity, 1 stop bit."""

    device: str
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1

    def __post_init__(self) -> None:
        if not self.device:
            raise ValueError("the RTU serial device is empty")
        if self.baudrate <= 0:
            raise ValueError(f"RTU baud rate {self.baudrate} must be positive")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"RTU parity {self.parity!r} must be 'N', 'E' or 'O'")
        if self.stopbits not in (1, 2):
            raise ValueError(f"RTU stop bits {self.stopbits} must be 1 or 2")

    def __str__(self) -> str:
        return f"Modbus RTU {self.device} {self.baudrate} 8{self.parity}{self.stopbits}"


Endpoint = TcpEndpoint | RtuEndpoint


class SunSpecServer:
    """Serves one battery system as SunSpec device ``unit_id`` on one endpoint.

    ``control`` receives the clients' connect and enable commands; without one every register
    is read-only. Call ``update`` whenever the system master publishes a new state; until the
    first one the map holds only the fixed values (802 State reads INITIALIZING).
    """

    def __init__(
        self,
        rating: SystemRating,
        endpoint: Endpoint,
        *,
        control: SystemControl | None = None,
        unit_id: int = 1,
        model_name: str = "cellwarden BMS",
    ) -> None:
        if not 1 <= unit_id <= MAX_UNIT_ID:
            raise ValueError(f"Modbus unit id {unit_id} is outside 1..{MAX_UNIT_ID}")
        self.endpoint = endpoint
        self._control = control
        self.unit_id = unit_id
        self.map = SunSpecMap(
            rating, unit_id=unit_id, controllable=control is not None, model_name=model_name
        )
        self.port: int | None = None  # the bound TCP port once started
        self.refused_writes = 0  # writes to the map answered with an exception
        self.last_refusal = ""  # why the last one was refused
        self._lock = threading.Lock()
        self._registers = list(self.map.blank)
        self._commands = [address - BASE_ADDRESS for address in self.map.command_addresses]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # --- the data ------------------------------------------------------------------------
    def update(self, state: SystemState) -> None:
        """Publish a new state; command registers keep the last command written."""
        registers = self.map.encode(state)
        with self._lock:
            for offset in self._commands:
                registers[offset] = self._registers[offset]
            self._registers = registers

    # --- start and stop --------------------------------------------------------------------
    def start(self, timeout_s: float = 5.0) -> None:
        """Serve in a background thread; returns once the socket listens or the serial device
        is open. Raises OSError naming the endpoint if it cannot be opened."""
        if self._thread is not None:
            raise RuntimeError(f"the SunSpec server on {self.endpoint} is already running")
        started: Future[int | None] = Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="sunspec-modbus", daemon=True
        )
        self._thread.start()
        try:
            self.port = started.result(timeout_s)
        except BaseException:
            self.stop(timeout_s)
            raise

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the endpoint and every client connection; wait for the thread to end."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"the SunSpec server on {self.endpoint} did not stop in time")
        self._thread = self._loop = self._stopping = None
        self.port = None

    def __enter__(self) -> SunSpecServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self, started: Future[int | None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = self._modbus_server()
            await server.serve_forever(background=True)
        except Exception as error:
            started.set_exception(OSError(f"cannot serve SunSpec on {self.endpoint}: {error}"))
            return
        port = None
        if isinstance(self.endpoint, TcpEndpoint):
            port = server.transport.sockets[0].getsockname()[1]
        started.set_result(port)
        await self._stopping.wait()
        await server.shutdown()

    def _modbus_server(self) -> ModbusTcpServer | ModbusSerialServer:
        image = SimData(BASE_ADDRESS, values=list(self._registers), datatype=DataType.REGISTERS)
        everything = SimData(0, count=LAST_ADDRESS + 1, datatype=DataType.REGISTERS)
        devices = [
            SimDevice(self.unit_id, simdata=[image], action=self._on_request),
            SimDevice(0, simdata=[everything], action=_not_this_unit),  # any other unit id
        ]
        endpoint = self.endpoint
        if isinstance(endpoint, TcpEndpoint):
            return ModbusTcpServer(devices, address=(endpoint.host, endpoint.port))
        return ModbusSerialServer(
            devices, framer=FramerType.RTU, port=endpoint.device, baudrate=endpoint.baudrate,
            parity=endpoint.parity, stopbits=endpoint.stopbits, bytesize=8,
            ignore_missing_devices=True,
        )  # fmt: skip

    # --- requests (on the server's loop) ---------------------------------------------------
    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus' hook before it answers from ``registers``: fill them from the current
        image, or check and execute a write. Returns the exception to answer, if any."""
        if function_code not in REGISTER_FUNCTIONS:
            return ExcCodes.ILLEGAL_FUNCTION
        if values is not None:
            return self._write(address, [int(v) for v in values])
        offset, image_offset = address - start_address, address - BASE_ADDRESS
        with self._lock:
            registers[offset : offset + count] = self._registers[
                image_offset : image_offset + count
            ]
        return None

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        try:
            commands = self.map.decode_write(address, values)
        except WriteRefusedError as refusal:
            return self._refuse(ExcCodes(refusal.code), str(refusal))
        for command in commands:
            try:
                self._execute(command)
            except Exception as error:  # the system refused: the client hears 04, we go on
                reason = f"the system refused to {command}: {error}"
                return self._refuse(ExcCodes.DEVICE_FAILURE, reason)
        offset = address - BASE_ADDRESS
        with self._lock:
            self._registers[offset : offset + len(values)] = values
        return None

    def _execute(self, command: Command) -> None:
        control = self._control
        assert control is not None  # the map refuses every write without a control
        if command.action is Action.CONNECT_SYSTEM:
            control.request_connected(command.on)
        else:
            assert command.string is not None
            control.request_string_enabled(command.string, command.on)

    def _refuse(self, code: ExcCodes, reason: str) -> ExcCodes:
        self.refused_writes += 1
        self.last_refusal = reason
        log.warning("SunSpec write refused with exception %02X: %s", code, reason)
        return code


async def _not_this_unit(*request: object) -> ExcCodes | None:
    """Any unit id but ours: no answer on RTU, exception 0B on TCP."""
    raise NoSuchIdException("this server answers one unit id only")
