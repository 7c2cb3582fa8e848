"""GPS: NMEA parsing and formatting, simulated routes and sites, the serial reader, geofences."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, time

import numpy as np
import pynmea2
import pytest
import serial

from cellwarden.edge.geofence import Geofence, GeofenceEvent, GeofenceMonitor, haversine_m
from cellwarden.hardware.gps import (
    MAX_LINE_CHARS,
    GpsFix,
    NmeaReader,
    SerialGps,
    SimulatedGps,
    loop_route,
    offset_deg,
    speed_from_power_kmh,
)
from cellwarden.model.errors import ConfigError

MUNICH = (48.137, 11.575)


def xor_checksum(sentence: str) -> str:
    """Independent check: XOR of every character between '$' and '*'."""
    body = sentence[1 : sentence.index("*")]
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{value:02X}"


def with_checksum(body: str) -> str:
    return f"${body}*{xor_checksum('$' + body + '*')}"


def drive(gps: SimulatedGps, times_s: list[float], speeds_kmh: list[float]) -> list[GpsFix]:
    """Run a simulated receiver through the reader; one fix per epoch."""
    reader = NmeaReader()
    fixes = []
    for now_s, speed_kmh in zip(times_s, speeds_kmh, strict=True):
        emitted = [reader.feed(line, now_s) for line in gps.sentences(now_s, speed_kmh)]
        assert emitted[0] is None and emitted[1] is not None  # RMC waits for its GGA
        fixes.append(emitted[1])
    assert reader.errors == 0
    return fixes


def path_length_m(fixes: list[GpsFix]) -> float:
    return sum(
        haversine_m(a.latitude_deg, a.longitude_deg, b.latitude_deg, b.longitude_deg)
        for a, b in itertools.pairwise(fixes)
    )


# --- geodesy and physics -----------------------------------------------------------------------


def test_haversine_matches_arc_lengths_on_the_sphere() -> None:
    one_degree_m = 6_371_008.8 * math.pi / 180
    assert haversine_m(10.0, 20.0, 11.0, 20.0) == pytest.approx(one_degree_m, rel=1e-9)
    assert haversine_m(0.0, 20.0, 0.0, 21.0) == pytest.approx(one_degree_m, rel=1e-9)
    # along a parallel the arc is shorter than cos(lat) × the longitude arc (a great circle)
    assert haversine_m(60.0, 0.0, 60.0, 0.01) == pytest.approx(one_degree_m * 0.005, rel=1e-6)
    assert haversine_m(*MUNICH, *MUNICH) == 0.0


def test_speed_from_power_is_power_over_consumption() -> None:
    assert speed_from_power_kmh(600.0, 15.0, 60.0) == pytest.approx(40.0)
    # an hour at that speed covers 40 km on 600 Wh: 15 Wh/km, the consumption given
    assert 600.0 / (speed_from_power_kmh(600.0, 15.0, 60.0) * 1.0) == pytest.approx(15.0)
    assert speed_from_power_kmh(600.0, 15.0, 25.0) == 25.0  # capped
    assert speed_from_power_kmh(0.0, 15.0, 25.0) == 0.0  # idle
    assert speed_from_power_kmh(-800.0, 15.0, 25.0) == 0.0  # charging or regenerating
    with pytest.raises(ConfigError, match="consumption"):
        speed_from_power_kmh(600.0, 0.0, 25.0)
    with pytest.raises(ValueError, match="finite"):
        speed_from_power_kmh(math.nan, 15.0, 25.0)


def test_loop_route_is_a_closed_circle() -> None:
    route = loop_route(*MUNICH, radius_m=500.0, points=12)
    assert len(route) == 12
    for lat, lon in route:
        assert haversine_m(*MUNICH, lat, lon) == pytest.approx(500.0, rel=1e-3)
    assert route[0][0] > MUNICH[0]  # starts north
    chord_m = 2 * 500.0 * math.sin(math.pi / 12)
    assert haversine_m(*route[0], *route[1]) == pytest.approx(chord_m, rel=1e-3)
    with pytest.raises(ConfigError):
        loop_route(*MUNICH, radius_m=500.0, points=2)


# --- formatting and round trip -----------------------------------------------------------------


def test_reader_decodes_a_reference_receiver_epoch() -> None:
    reader = NmeaReader()
    gga = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
    rmc = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
    assert reader.feed(gga, 5.0) is None
    fix = reader.feed(rmc + "\r\n", 6.0)
    assert fix == GpsFix(
        time_s=6.0,
        latitude_deg=pytest.approx(48 + 7.038 / 60),
        longitude_deg=pytest.approx(11 + 31.0 / 60),
        altitude_m=545.4,
        speed_kmh=pytest.approx(22.4 * 1.852),
        course_deg=84.4,
        satellites=8,
        hdop=0.9,
        valid=True,
    )
    assert reader.latest is fix


@pytest.mark.parametrize(
    "place", [MUNICH, (-33.8688, 151.2093), (-22.9068, -43.1729), (40.7128, -74.0060)]
)
def test_simulated_sentences_round_trip_to_the_position(place: tuple[float, float]) -> None:
    gps = SimulatedGps(loop_route(*place, radius_m=300.0), altitude_m=512.3)
    reader = NmeaReader()
    for step in range(40):
        now_s = 1.5 * step
        lines = gps.sentences(now_s, speed_kmh=50.0)
        truth = gps.position_deg
        assert [line[3:6] for line in lines] == ["RMC", "GGA"]
        for line in lines:
            assert line.startswith("$GP") and line[-3] == "*"
            assert line[-2:] == xor_checksum(line)
            pynmea2.parse(line, check=True)  # the library accepts it as is
        rmc_fields = lines[0].split("*")[0].split(",")
        assert re.fullmatch(r"\d{6}\.\d{2}", rmc_fields[1])
        assert rmc_fields[2] == "A"
        assert re.fullmatch(r"\d{4}\.\d{4}", rmc_fields[3])
        assert rmc_fields[4] == ("N" if place[0] > 0 else "S")
        assert re.fullmatch(r"\d{5}\.\d{4}", rmc_fields[5])
        assert rmc_fields[6] == ("E" if place[1] > 0 else "W")
        assert float(rmc_fields[7]) == pytest.approx(50.0 / 1.852, abs=1e-3)  # knots
        parsed = pynmea2.parse(lines[0])
        assert haversine_m(parsed.latitude, parsed.longitude, *truth) < 0.5
        fix = [reader.feed(line, now_s) for line in lines][-1]
        assert fix is not None and fix.valid and fix.time_s == now_s
        assert haversine_m(fix.latitude_deg, fix.longitude_deg, *truth) < 0.5
        assert fix.speed_kmh == pytest.approx(50.0, abs=0.01)
        assert fix.altitude_m == pytest.approx(512.3, abs=0.05)
        assert (fix.satellites, fix.hdop) == (9, 0.9)


def test_epochs_carry_consecutive_utc_times() -> None:
    gps = SimulatedGps([MUNICH])
    stamps = [pynmea2.parse(gps.sentences(t)[0]).timestamp for t in (0.0, 1.0, 61.25)]
    assert stamps == [
        time(0, 0, 0, tzinfo=UTC),
        time(0, 0, 1, tzinfo=UTC),
        time(0, 1, 1, 250_000, tzinfo=UTC),
    ]


# --- motion ------------------------------------------------------------------------------------


def test_distance_along_a_route_is_the_integral_of_speed() -> None:
    gps = SimulatedGps(loop_route(*MUNICH, radius_m=500.0))
    times_s = [float(t) for t in range(101)]
    fixes = drive(gps, times_s, [36.0] * len(times_s))
    assert path_length_m(fixes) == pytest.approx(1000.0, rel=0.01)
    assert gps.odometer_m == pytest.approx(1000.0, rel=1e-9)


def test_a_varying_speed_is_integrated_over_the_time_since_the_previous_call() -> None:
    gps = SimulatedGps(loop_route(*MUNICH, radius_m=800.0))
    times_s = [0.0, 0.5, 2.0, 3.0, 7.5, *[8.0 + 2.0 * k for k in range(60)]]
    speeds_kmh = [20.0 + 0.4 * t for t in times_s]
    expected_m = sum(
        speeds_kmh[k] / 3.6 * (times_s[k] - times_s[k - 1]) for k in range(1, len(times_s))
    )
    fixes = drive(gps, times_s, speeds_kmh)
    assert path_length_m(fixes) == pytest.approx(expected_m, rel=0.01)
    assert fixes[-1].speed_kmh == pytest.approx(speeds_kmh[-1], abs=0.01)


def test_course_is_the_bearing_of_the_current_leg() -> None:
    side_m = 400.0
    south_west = MUNICH
    north_west = offset_deg(*south_west, side_m, 0.0)
    north_east = offset_deg(*south_west, side_m, side_m)
    south_east = offset_deg(*south_west, 0.0, side_m)
    gps = SimulatedGps([south_west, north_west, north_east, south_east])
    times_s = [float(t) for t in range(0, 160, 7)]
    fixes = drive(gps, times_s, [36.0] * len(times_s))  # 10 m/s: a leg every 40 s
    for fix, now_s in zip(fixes, times_s, strict=True):
        leg, along_m = divmod(10.0 * now_s, side_m)
        assert along_m > 0.0 or now_s == 0.0, "no fix lands on a later corner"
        expected_deg = (0.0, 90.0, 180.0, 270.0)[int(leg) % 4]
        assert fix.course_deg == pytest.approx(expected_deg, abs=0.1)
    # and it is the direction the fixes actually move in, away from the corners
    for a, b in itertools.pairwise(fixes):
        if int(a.time_s * 10 // side_m) == int(b.time_s * 10 // side_m):
            moved = math.degrees(
                math.atan2(
                    (b.longitude_deg - a.longitude_deg) * math.cos(math.radians(a.latitude_deg)),
                    b.latitude_deg - a.latitude_deg,
                )
            )
            assert (moved - b.course_deg + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=0.5)


def test_time_going_backwards_or_a_moving_site_is_a_clear_error() -> None:
    gps = SimulatedGps(loop_route(*MUNICH, radius_m=300.0))
    gps.sentences(10.0, 30.0)
    with pytest.raises(ValueError, match="backwards"):
        gps.sentences(9.0, 30.0)
    with pytest.raises(ValueError, match="speed"):
        gps.sentences(11.0, -5.0)
    site = SimulatedGps.site(*MUNICH, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="does not move"):
        site.sentences(0.0, 10.0)
    with pytest.raises(ConfigError):
        SimulatedGps([MUNICH, MUNICH])


# --- fixed sites -------------------------------------------------------------------------------


def site_fixes(seed: int, noise_m: float = 2.0, hours: float = 1.0) -> list[GpsFix]:
    gps = SimulatedGps.site(*MUNICH, rng=np.random.default_rng(seed), noise_m=noise_m)
    times_s = [float(t) for t in range(int(hours * 3600))]
    return drive(gps, times_s, [0.0] * len(times_s))


def test_a_fixed_site_stays_within_its_noise() -> None:
    fixes = site_fixes(seed=7)
    errors_m = np.array([haversine_m(f.latitude_deg, f.longitude_deg, *MUNICH) for f in fixes])
    rms_m = float(np.sqrt(np.mean(errors_m**2)))
    assert 1.5 < rms_m < 4.5  # sqrt(2) × 2 m expected for two axes of 2 m each
    assert errors_m.max() < 10.0  # five standard deviations
    assert np.std([f.altitude_m for f in fixes]) == pytest.approx(3.0, rel=0.5)
    # correlated like a real receiver: one second apart, fixes are much closer than the spread
    steps_m = [
        haversine_m(a.latitude_deg, a.longitude_deg, b.latitude_deg, b.longitude_deg)
        for a, b in itertools.pairwise(fixes)
    ]
    assert np.mean(steps_m) < 0.3 * rms_m
    assert all(f.speed_kmh == 0.0 and math.isnan(f.course_deg) for f in fixes)


def test_a_fixed_site_is_deterministic_for_its_seed() -> None:
    first, again, other = (
        site_fixes(3, hours=0.05),
        site_fixes(3, hours=0.05),
        site_fixes(4, hours=0.05),
    )
    assert first == again
    assert first != other[: len(first)]


# --- bad input ---------------------------------------------------------------------------------

GOOD_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GOOD_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GOOD_RMC[:-2] + "6B", "bad checksum"),
        (GOOD_RMC.replace("4807.038", "4807.039"), "bad checksum"),
        (GOOD_RMC[:30], "truncated"),
        ("\x00\xff\x13\x8a$GP\x02\x7f", "binary"),
        (b"\xb5b\x01\x07\\\x00".decode("latin-1"), "binary"),  # a u-blox binary frame
        ("", "empty"),
        ("\r\n", "empty"),
        ("hello receiver", "not NMEA"),
        ("38,N,01131.000,E,022.4*6A", "not NMEA"),  # joined mid-sentence
        ("$" + "A" * (MAX_LINE_CHARS + 10), "too long"),
        (with_checksum("GPXYZ,1,2,3"), "unknown sentence"),
        (with_checksum("GPRMC,123519,A"), "bad fields"),
        (with_checksum("GPRMC,12x519,A,4807.038,N,01131.000,E,1.0,2.0,230394,,"), "bad fields"),
        (with_checksum("GPRMC,123519,A,48x7.038,N,01131.000,E,1.0,2.0,230394,,"), "bad fields"),
        (with_checksum("GPRMC,123519,A,4807.038,Q,01131.000,E,1.0,2.0,230394,,"), "bad fields"),
        (with_checksum("GPRMC,123519,A,,,01131.000,E,1.0,2.0,230394,,"), "bad fields"),
        (with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,fast,2.0,230394,,"), "bad fields"),
        (with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,many,0.9,545.4,M,46.9,M,,"), "bad"),
        (with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08"), "bad fields"),
    ],
)
def test_corrupt_lines_are_counted_with_a_reason_and_skipped(line: str, reason: str) -> None:
    reader = NmeaReader()
    reader.feed(GOOD_GGA, 0.0)  # an epoch waiting for its RMC
    assert reader.feed(line, 1.0) is None
    assert reader.errors == 1
    assert reader.last_error.startswith(reason)
    assert sum(reader.errors_by_reason.values()) == 1
    assert reader.ignored == 0
    # the reader goes on: the waiting epoch still completes
    fix = reader.feed(GOOD_RMC, 2.0)
    assert fix is not None and fix.valid and fix.latitude_deg == pytest.approx(48.1173)


def test_sentences_not_used_are_ignored_not_errors() -> None:
    reader = NmeaReader()
    for body in ("GPGSV,1,1,00", "GPGSA,A,3,,,,,,,,,,,,,1.0,0.9,0.5", "PUBX,00,1"):
        assert reader.feed(with_checksum(body), 0.0) is None
    assert (reader.ignored, reader.errors) == (3, 0)


def test_an_outage_gives_invalid_fixes_and_recovers() -> None:
    gps = SimulatedGps(loop_route(*MUNICH, radius_m=300.0))
    reader = NmeaReader()
    results = []
    for step in range(6):
        gps.has_fix = step not in (2, 3)
        results.append([reader.feed(line, float(step)) for line in gps.sentences(step, 30.0)][-1])
    assert reader.errors == 0
    assert [fix.valid for fix in results] == [True, True, False, False, True, True]
    lost = results[2]
    assert math.isnan(lost.latitude_deg) and lost.satellites == 0


def test_an_rmc_without_its_gga_gives_no_fix() -> None:
    reader = NmeaReader()
    rmc_next_second = with_checksum("GPRMC,123520,A,4807.038,N,01131.000,E,022.4,084.4,230394,,")
    assert reader.feed(GOOD_RMC, 0.0) is None
    assert reader.feed(rmc_next_second, 1.0) is None  # the first epoch's GGA never came
    assert reader.feed(GOOD_GGA, 1.1) is None  # belongs to the lost epoch
    assert reader.latest is None


# --- a serial receiver -------------------------------------------------------------------------


class FakePort:
    """Bytes that have 'arrived' on the port; optionally failing like an unplugged adapter."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fail = False
        self.closed = False

    @property
    def in_waiting(self) -> int:
        if self.fail:
            raise serial.SerialException("device reports readiness to read but returned no data")
        return len(self.buffer)

    def read(self, size: int = 1) -> bytes:
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data

    def close(self) -> None:
        self.closed = True


def test_serial_gps_reads_lines_split_across_polls() -> None:
    port = FakePort()
    receiver = SerialGps(port)
    gps = SimulatedGps(loop_route(*MUNICH, radius_m=300.0))
    assert receiver.poll(0.0) is None
    stream = "".join(line + "\r\n" for line in gps.sentences(0.0, 20.0)).encode()
    port.buffer += stream[:50]
    assert receiver.poll(0.1) is None  # half an RMC so far
    port.buffer += stream[50:]
    fix = receiver.poll(0.2)
    assert fix is not None and fix.time_s == 0.2
    assert haversine_m(fix.latitude_deg, fix.longitude_deg, *gps.position_deg) < 0.5
    # a later epoch, some noise on the line, then a port failure: the last fix is kept
    port.buffer += (
        b"\x00\xff garbage\r\n"
        + "".join(line + "\r\n" for line in gps.sentences(1.0, 20.0)).encode()
    )
    newer = receiver.poll(1.05)
    assert newer is not None and newer.time_s == 1.05
    assert receiver.reader.errors == 1 and receiver.reader.last_error.startswith("binary")
    port.fail = True
    assert receiver.poll(2.0) is newer
    assert receiver.port_errors == 1 and "no data" in receiver.last_port_error
    port.fail = False
    port.buffer += b"x" * (MAX_LINE_CHARS + 1)  # a wrong baud rate: no line ends
    receiver.poll(3.0)
    assert receiver.reader.errors_by_reason["too long"] == 1
    receiver.close()
    assert port.closed


# --- geofences ---------------------------------------------------------------------------------


def test_a_route_through_a_fence_enters_then_exits() -> None:
    route = loop_route(*MUNICH, radius_m=500.0)
    depot = Geofence("depot", *route[3], radius_m=100.0)
    far = Geofence("airport", 48.3538, 11.7861, radius_m=2000.0)
    monitor = GeofenceMonitor([depot, far], hysteresis_m=20.0)
    gps = SimulatedGps(route)
    times_s = [float(t) for t in range(320)]  # one lap of about 3.1 km at 10 m/s
    events = [e for fix in drive(gps, times_s, [36.0] * 320) for e in monitor.update(fix)]
    assert [(e.fence, e.kind) for e in events] == [("depot", "enter"), ("depot", "exit")]
    enter, leave = events
    assert 80.0 <= enter.distance_m <= 90.0  # first fix inside radius - hysteresis / 2
    assert 110.0 < leave.distance_m <= 120.0  # first fix outside radius + hysteresis / 2
    # the route reaches waypoint 3 after three chords; the fence spans about ±90 m of it
    chord_m = 2 * 500.0 * math.sin(math.pi / 12)
    assert enter.time_s == pytest.approx((3 * chord_m - 90.0) / 10.0, abs=1.5)
    assert leave.time_s == pytest.approx((3 * chord_m + 110.0) / 10.0, abs=1.5)
    assert monitor.inside("depot") is False and monitor.inside("airport") is False


def test_a_fix_jittering_on_the_border_does_not_flap() -> None:
    fence = Geofence("site", *MUNICH, radius_m=50.0)

    def fix_at(time_s: float, distance_m: float) -> GpsFix:
        lat, lon = offset_deg(*MUNICH, 0.0, distance_m)
        return GpsFix(time_s, lat, lon, 500.0, 0.0, math.nan, 9, 0.9, True)

    jitter = [fix_at(t, 50.0 + (4.0 if t % 2 else -4.0)) for t in range(100)]
    steady = GeofenceMonitor([fence], hysteresis_m=20.0)
    events = [e for fix in jitter for e in steady.update(fix)]
    assert events == [GeofenceEvent(0.0, "site", "enter", pytest.approx(46.0))]
    naive = GeofenceMonitor([fence], hysteresis_m=0.0)
    assert len([e for fix in jitter for e in naive.update(fix)]) == 100  # what it prevents

    # a real (simulated) receiver parked on the border for an hour
    border = offset_deg(*MUNICH, 50.0, 0.0)
    parked = SimulatedGps.site(*border, rng=np.random.default_rng(11), noise_m=2.0)
    monitor = GeofenceMonitor([fence], hysteresis_m=20.0)
    times_s = [float(t) for t in range(3600)]
    events = [e for fix in drive(parked, times_s, [0.0] * 3600) for e in monitor.update(fix)]
    assert len(events) <= 1


def test_invalid_fixes_are_ignored_by_the_monitor() -> None:
    fence = Geofence("yard", *MUNICH, radius_m=100.0)
    monitor = GeofenceMonitor([fence])
    inside = GpsFix(0.0, *MUNICH, 500.0, 0.0, math.nan, 9, 0.9, True)
    far_lat, far_lon = offset_deg(*MUNICH, 5000.0, 0.0)
    assert monitor.update(GpsFix(1.0, far_lat, far_lon, 0, 0, 0, 3, 9.0, False)) == []
    assert monitor.inside("yard") is None
    assert [e.kind for e in monitor.update(inside)] == ["enter"]
    nan_fix = GpsFix(2.0, math.nan, math.nan, math.nan, math.nan, math.nan, 0, math.nan, False)
    assert monitor.update(nan_fix) == []
    assert monitor.update(GpsFix(3.0, far_lat, far_lon, 0, 0, 0, 3, 9.0, False)) == []
    assert monitor.inside("yard") is True


def test_fence_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="radius_m must be positive"):
        Geofence("x", *MUNICH, radius_m=0.0)
    with pytest.raises(ConfigError, match="unique"):
        GeofenceMonitor([Geofence("a", *MUNICH, 50.0), Geofence("a", *MUNICH, 80.0)])
    with pytest.raises(ConfigError, match="half the hysteresis"):
        GeofenceMonitor([Geofence("tiny", *MUNICH, 5.0)], hysteresis_m=20.0)
