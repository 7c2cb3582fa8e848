"""GPS receivers: NMEA 0183 parsing, a serial receiver and a simulated one, and geodesy helpers.

A fix combines the RMC sentence (position, speed, course, validity) and the GGA sentence
(altitude, satellites, HDOP) of the same UTC epoch. ``time_s`` of a fix is the injected clock's
time when the fix was completed, never the wall clock. Positions are WGS-84 degrees (north and
east positive); distances use a spherical Earth, accurate to well under 1 % at city scale.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

import numpy as np
import pynmea2
import serial

from cellwarden.model.errors import ConfigError

EARTH_RADIUS_M = 6_371_008.8  # mean radius
KMH_PER_KNOT = 1.852
MAX_LINE_CHARS = 256  # longer than any real NMEA sentence (82 characters): not NMEA
_CHECKSUM_END = re.compile(r"\*[0-9A-Fa-f]{2}$")

Waypoint = tuple[float, float]  # (latitude_deg, longitude_deg)


# --- geodesy -----------------------------------------------------------------------------------


def haversine_m(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle distance between two points, in metres."""
    phi1, phi2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2_deg - lon1_deg)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, clockwise from north, in [0, 360)."""
    phi1, phi2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dlambda = math.radians(lon2_deg - lon1_deg)
    y = math.sin(dlambda) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlambda)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset_deg(lat_deg: float, lon_deg: float, north_m: float, east_m: float) -> Waypoint:
    """The point ``north_m`` north and ``east_m`` east of a point (local flat Earth)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat_deg))))
    return lat_deg + dlat, lon_deg + dlon


def loop_route(
    center_lat: float, center_lon: float, radius_m: float, points: int = 12
) -> list[Waypoint]:
    """A closed route of ``points`` waypoints on a circle, starting north, driven clockwise."""
    if points < 3 or radius_m <= 0:
        raise ConfigError(
            f"a loop route needs radius_m > 0 and at least 3 points, got {radius_m} m, {points}"
        )
    angles = [2.0 * math.pi * k / points for k in range(points)]
    return [
        offset_deg(center_lat, center_lon, radius_m * math.cos(a), radius_m * math.sin(a))
        for a in angles
    ]


def speed_from_power_kmh(
    discharge_power_w: float, consumption_wh_per_km: float, max_speed_kmh: float
) -> float:
    """A vehicle's speed from the pack's discharge power: ``W / (Wh/km) = km/h``.

    Charging or idle (power <= 0) gives 0; the result is capped at ``max_speed_kmh``.
    """
    if not consumption_wh_per_km > 0 or not max_speed_kmh >= 0:
        raise ConfigError(
            f"consumption_wh_per_km ({consumption_wh_per_km}) must be positive and "
            f"max_speed_kmh ({max_speed_kmh}) zero or positive"
        )
    if not math.isfinite(discharge_power_w):
        raise ValueError(f"discharge power must be finite, got {discharge_power_w}")
    return min(max(discharge_power_w, 0.0) / consumption_wh_per_km, max_speed_kmh)


# --- fixes and parsing -------------------------------------------------------------------------


@dataclass(frozen=True)
class GpsFix:
    """One position fix. Fields a receiver left empty are NaN (satellites: 0)."""

    time_s: float
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    speed_kmh: float
    course_deg: float
    satellites: int
    hdop: float
    valid: bool


@dataclass(frozen=True)
class _Rmc:
    utc: time | None
    valid: bool
    latitude_deg: float
    longitude_deg: float
    speed_kmh: float
    course_deg: float


@dataclass(frozen=True)
class _Gga:
    utc: time | None
    quality: int
    altitude_m: float
    satellites: int
    hdop: float


class _FieldError(ValueError):
    """A sentence whose checksum is right but whose fields are missing or malformed."""


class NmeaReader:
    """Turns NMEA 0183 lines into fixes; bad lines are counted and skipped, never raised.

    A fix is returned when the RMC and the GGA of one UTC epoch have both arrived (either
    order). Well-formed sentences that carry nothing used here (GSV, GSA, VTG, GLL, proprietary)
    are counted in ``ignored``; lines that are not usable NMEA are counted in ``errors``,
    ``errors_by_reason`` and described in ``last_error`` (``"<reason>: <detail>"``). Reasons:
    ``empty``, ``binary``, ``too long``, ``not NMEA``, ``truncated`` (no checksum),
    ``bad checksum``, ``unknown sentence``, ``bad fields``.
    """

    def __init__(self) -> None:
        self.errors = 0
        self.errors_by_reason: Counter[str] = Counter()
        self.last_error = ""
        self.ignored = 0
        self.latest: GpsFix | None = None
        self._rmc: _Rmc | None = None
        self._gga: _Gga | None = None

    def feed(self, line: str, now_s: float) -> GpsFix | None:
        """Parse one line received at ``now_s``; the fix it completes, if any."""
        try:
            sentence = self._parse(line.strip())
            if isinstance(sentence, pynmea2.RMC):
                self._rmc = _read_rmc(sentence)
            elif isinstance(sentence, pynmea2.GGA):
                self._gga = _read_gga(sentence)
            else:
                self.ignored += 1
                return None
        except _FieldError as exc:
            self._error("bad fields", f"{exc} in {_shorten(line)}")
            return None
        except _LineError as exc:
            self._error(exc.reason, exc.detail)
            return None
        return self._combine(now_s)

    def _parse(self, text: str) -> pynmea2.NMEASentence:
        if not text:
            raise _LineError("empty", "empty line")
        if len(text) > MAX_LINE_CHARS:
            raise _LineError("too long", f"{len(text)} characters without a line end")
        if not (text.isascii() and text.isprintable()):
            raise _LineError("binary", f"non-text characters in {_shorten(text)}")
        if text.startswith("$") and not _CHECKSUM_END.search(text):
            raise _LineError("truncated", f"no checksum at the end of {_shorten(text)}")
        try:
            return pynmea2.parse(text, check=True)
        except pynmea2.ChecksumError as exc:
            raise _LineError("bad checksum", f"{exc.args[0]} in {_shorten(text)}") from None
        except pynmea2.SentenceTypeError:
            raise _LineError("unknown sentence", _shorten(text)) from None
        except (pynmea2.ParseError, ValueError):
            raise _LineError("not NMEA", _shorten(text)) from None

    def _error(self, reason: str, detail: str) -> None:
        self.errors += 1
        self.errors_by_reason[reason] += 1
        self.last_error = f"{reason}: {detail}"

    def _combine(self, now_s: float) -> GpsFix | None:
        rmc, gga = self._rmc, self._gga
        if rmc is None or gga is None or rmc.utc != gga.utc:
            return None
        self._rmc = self._gga = None
        valid = rmc.valid and gga.quality > 0
        self.latest = GpsFix(
            time_s=now_s,
            latitude_deg=rmc.latitude_deg,
            longitude_deg=rmc.longitude_deg,
            altitude_m=gga.altitude_m,
            speed_kmh=rmc.speed_kmh,
            course_deg=rmc.course_deg,
            satellites=gga.satellites,
            hdop=gga.hdop,
            valid=valid and math.isfinite(rmc.latitude_deg) and math.isfinite(rmc.longitude_deg),
        )
        return self.latest


class _LineError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _shorten(text: str, limit: int = 48) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _require_fields(sentence: pynmea2.NMEASentence, count: int) -> None:
    if len(sentence.data) < count:
        raise _FieldError(f"{len(sentence.data)} fields, {sentence.sentence_type} needs {count}")


def _utc(sentence: pynmea2.NMEASentence) -> time | None:
    value = sentence.timestamp
    if value is not None and not isinstance(value, time):
        raise _FieldError(f"time {value!r}")
    return value


def _number(value: object, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A numeric field as a float within [low, high]; NaN when empty."""
    if value is None or value == "":
        return math.nan
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _FieldError(f"{name} {value!r}") from None
    if not low <= number <= high:  # also rejects "nan" and "inf"
        raise _FieldError(f"{name} {value!r} out of range")
    return number


def _count(value: object, name: str) -> int:
    """A whole-number field (satellites, fix quality); 0 when empty."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and len(value) <= 3):
        return int(value)
    raise _FieldError(f"{name} {value!r}")


def _position(sentence: pynmea2.NMEASentence) -> Waypoint:
    """Latitude and longitude in degrees; NaN when the receiver left them empty."""
    if not sentence.lat and not sentence.lon:
        return math.nan, math.nan
    if not sentence.lat or not sentence.lon:
        raise _FieldError(f"half a position {sentence.lat!r}, {sentence.lon!r}")
    if sentence.lat_dir not in ("N", "S") or sentence.lon_dir not in ("E", "W"):
        raise _FieldError(f"hemisphere {sentence.lat_dir!r}/{sentence.lon_dir!r}")
    try:
        lat, lon = sentence.latitude, sentence.longitude
    except ValueError:
        raise _FieldError(f"position {sentence.lat!r}, {sentence.lon!r}") from None
    if not (abs(lat) <= 90.0 and abs(lon) <= 180.0):
        raise _FieldError(f"position {lat}, {lon} out of range")
    return lat, lon


def _read_rmc(sentence: pynmea2.RMC) -> _Rmc:
    _require_fields(sentence, 11)
    lat, lon = _position(sentence)
    mode = sentence.data[11] if len(sentence.data) > 11 else ""
    speed_kn = _number(sentence.spd_over_grnd, "speed", 0.0)
    return _Rmc(
        utc=_utc(sentence),
        valid=sentence.status == "A" and mode != "N",
        latitude_deg=lat,
        longitude_deg=lon,
        speed_kmh=speed_kn * KMH_PER_KNOT,
        course_deg=_number(sentence.true_course, "course", 0.0, 360.0),
    )


def _read_gga(sentence: pynmea2.GGA) -> _Gga:
    _require_fields(sentence, 14)
    return _Gga(
        utc=_utc(sentence),
        quality=_count(sentence.gps_qual, "fix quality"),
        altitude_m=_number(sentence.altitude, "altitude", -1000.0, 100_000.0),
        satellites=_count(sentence.num_sats, "satellites"),
        hdop=_number(sentence.horizontal_dil, "hdop", 0.0),
    )


# --- a real receiver ---------------------------------------------------------------------------


class SerialPort(Protocol):
    """What SerialGps needs of a port (a ``serial.Serial`` or a test double)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...


class SerialGps:
    """A receiver on a serial port: each poll reads what has arrived, without blocking.

    ``port`` is a device name (opened 8N1 at ``baudrate`` with no timeout) or an open port.
    Port failures (unplugged adapter) are counted in ``port_errors`` and keep the last fix.
    """

    def __init__(
        self, port: str | SerialPort, baudrate: int = 9600, reader: NmeaReader | None = None
    ) -> None:
        self.port: SerialPort = (
            serial.Serial(port, baudrate=baudrate, timeout=0) if isinstance(port, str) else port
        )
        self.reader = reader if reader is not None else NmeaReader()
        self.port_errors = 0
        self.last_port_error = ""
        self._pending = ""

    def poll(self, now_s: float) -> GpsFix | None:
        """Feed every complete line received so far; the latest fix (None before the first)."""
        try:
            waiting = self.port.in_waiting
            data = self.port.read(waiting) if waiting else b""
        except (serial.SerialException, OSError) as exc:
            self.port_errors += 1
            self.last_port_error = str(exc)
            return self.reader.latest
        *lines, self._pending = (self._pending + data.decode("ascii", "replace")).split("\n")
        if len(self._pending) > MAX_LINE_CHARS:
            lines.append(self._pending)
            self._pending = ""
        for line in lines:
            self.reader.feed(line, now_s)
        return self.reader.latest

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()


# --- a simulated receiver ----------------------------------------------------------------------


def nmea_checksum(body: str) -> str:
    """The two hex digits of a sentence: XOR of the characters between ``$`` and ``*``."""
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{value:02X}"


def _sentence(body: str) -> str:
    return f"${body}*{nmea_checksum(body)}"


def _dm(value_deg: float, degree_digits: int) -> str:
    """Degrees as NMEA ``(d)ddmm.mmmm``, unsigned."""
    units = round(abs(value_deg) * 60 * 10_000)  # ten-thousandths of a minute
    degrees, rest = divmod(units, 60 * 10_000)
    minutes, fraction = divmod(rest, 10_000)
    return f"{degrees:0{degree_digits}d}{minutes:02d}.{fraction:04d}"


class SimulatedGps:
    """A receiver on a vehicle driving a closed route, or at a fixed site (one waypoint).

    Each call to :meth:`sentences` advances the vehicle by the given speed held since the
    previous call and returns that epoch's RMC and GGA. Position noise, if any, is a
    first-order Gauss-Markov process per horizontal axis (standard deviation ``noise_m``,
    correlation time ``noise_tau_s``) as real receivers show; altitude noise is 1.5 times it.
    Set ``has_fix`` to False to simulate an outage (tunnel, no sky view).
    """

    def __init__(
        self,
        route: Sequence[Waypoint],
        *,
        rng: np.random.Generator | None = None,
        noise_m: float = 0.0,
        noise_tau_s: float = 60.0,
        altitude_m: float = 100.0,
        satellites: int = 9,
        hdop: float = 0.9,
        start_utc: datetime = datetime(2025, 1, 1, tzinfo=UTC),
        talker: str = "GP",
    ) -> None:
        if not route:
            raise ConfigError("a simulated GPS needs at least one waypoint")
        for lat, lon in route:
            if not (abs(lat) < 90.0 and abs(lon) <= 180.0):
                raise ConfigError(f"waypoint ({lat}, {lon}) is not a position on Earth")
        if noise_m < 0 or noise_tau_s <= 0 or (noise_m > 0 and rng is None):
            raise ConfigError("position noise needs noise_m >= 0, noise_tau_s > 0 and an rng")
        self.route = [(float(lat), float(lon)) for lat, lon in route]
        n = len(self.route)
        self._leg_m = [haversine_m(*self.route[k], *self.route[(k + 1) % n]) for k in range(n)]
        if n > 1 and min(self._leg_m) == 0.0:
            raise ConfigError("consecutive waypoints of a route must differ")
        self._rng = rng
        self.noise_m = noise_m
        self.noise_tau_s = noise_tau_s
        self.altitude_m = altitude_m
        self.satellites = satellites
        self.hdop = hdop
        self.start_utc = start_utc
        self.talker = talker
        self.has_fix = True
        self.odometer_m = 0.0
        self._leg = 0
        self._along_m = 0.0
        self._last_s: float | None = None
        self._noise = np.zeros(3)  # north, east, up [m]
        if rng is not None and noise_m > 0:
            self._noise = rng.normal(0.0, 1.0, 3) * self._noise_sigma()

    @classmethod
    def site(
        cls,
        latitude_deg: float,
        longitude_deg: float,
        rng: np.random.Generator,
        noise_m: float = 2.0,
        **options: Any,
    ) -> SimulatedGps:
        """A fixed installation (ESS, telecom site) with a few metres of position noise."""
        return cls([(latitude_deg, longitude_deg)], rng=rng, noise_m=noise_m, **options)

    @property
    def is_site(self) -> bool:
        return len(self.route) == 1

    @property
    def position_deg(self) -> Waypoint:
        """True (noise-free) position."""
        if self.is_site:
            return self.route[0]
        (lat0, lon0), (lat1, lon1) = self._leg_ends()
        share = self._along_m / self._leg_m[self._leg]
        return lat0 + share * (lat1 - lat0), lon0 + share * (lon1 - lon0)

    @property
    def course_deg(self) -> float:
        """Bearing of the leg being driven (NaN at a fixed site)."""
        if self.is_site:
            return math.nan
        (lat0, lon0), (lat1, lon1) = self._leg_ends()
        return bearing_deg(lat0, lon0, lat1, lon1)

    def _leg_ends(self) -> tuple[Waypoint, Waypoint]:
        return self.route[self._leg], self.route[(self._leg + 1) % len(self.route)]

    def sentences(self, now_s: float, speed_kmh: float = 0.0) -> list[str]:
        """Advance to ``now_s`` at ``speed_kmh`` and return this epoch's RMC and GGA sentences."""
        if not (math.isfinite(speed_kmh) and speed_kmh >= 0):
            raise ValueError(f"speed must be finite and non-negative, got {speed_kmh} km/h")
        if self.is_site and speed_kmh != 0:
            raise ValueError("a fixed site does not move: speed must be 0")
        dt_s = 0.0 if self._last_s is None else now_s - self._last_s
        if dt_s < 0:
            raise ValueError(f"time went backwards: {now_s} s after {self._last_s} s")
        self._last_s = now_s
        self._advance(speed_kmh / 3.6 * dt_s)
        self._step_noise(dt_s)
        return self._encode(now_s, speed_kmh)

    def _advance(self, distance_m: float) -> None:
        if self.is_site or distance_m <= 0:
            return
        self.odometer_m += distance_m
        distance_m %= sum(self._leg_m)
        while distance_m >= self._leg_m[self._leg] - self._along_m:
            distance_m -= self._leg_m[self._leg] - self._along_m
            self._leg = (self._leg + 1) % len(self.route)
            self._along_m = 0.0
        self._along_m += distance_m

    def _noise_sigma(self) -> np.ndarray:
        return self.noise_m * np.array([1.0, 1.0, 1.5])

    def _step_noise(self, dt_s: float) -> None:
        if self._rng is None or self.noise_m == 0 or dt_s == 0:
            return
        keep = math.exp(-dt_s / self.noise_tau_s)
        fresh = self._rng.normal(0.0, 1.0, 3) * self._noise_sigma()
        self._noise = keep * self._noise + math.sqrt(1.0 - keep**2) * fresh

    def _encode(self, now_s: float, speed_kmh: float) -> list[str]:
        stamp = self.start_utc + timedelta(milliseconds=10 * round(now_s * 100))
        hhmmss = f"{stamp:%H%M%S}.{stamp.microsecond // 10_000:02d}"
        if not self.has_fix:
            return [
                _sentence(f"{self.talker}RMC,{hhmmss},V,,,,,,,{stamp:%d%m%y},,,N"),
                _sentence(f"{self.talker}GGA,{hhmmss},,,,,0,00,99.99,,,,,,"),
            ]
        lat, lon = offset_deg(*self.position_deg, self._noise[0], self._noise[1])
        where = f"{_dm(lat, 2)},{'N' if lat >= 0 else 'S'},{_dm(lon, 3)},{'E' if lon >= 0 else 'W'}"
        course = "" if self.is_site else f"{self.course_deg:.2f}"
        speed_kn = speed_kmh / KMH_PER_KNOT
        altitude_m = self.altitude_m + self._noise[2]
        return [
            _sentence(
                f"{self.talker}RMC,{hhmmss},A,{where},{speed_kn:.3f},{course},{stamp:%d%m%y},,,A"
            ),
            _sentence(
                f"{self.talker}GGA,{hhmmss},{where},1,{self.satellites:02d},{self.hdop:.2f},"
                f"{altitude_m:.1f},M,0.0,M,,"
            ),
        ]
