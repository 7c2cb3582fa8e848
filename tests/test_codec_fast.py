"""The compiled frame codec against cantools, bit for bit, on every message of every shipped DBC.

``FrameCodec`` compiles each message's layout from the cantools database into shifts and
masks. Here thousands of seeded random frames are encoded and decoded both ways: our codec,
and cantools' own ``Message.encode(..., strict=False)`` / ``Message.decode`` with the codec's
documented semantics applied around it (unset signals zero, saturation to the DBC range, NaN
to the value nearest zero, the alive counter and the CRC filled, labels as strings).
"""

from __future__ import annotations

import math
import os
import random

import cantools
import pytest
from cantools.database.can import Message, Signal

from cellwarden.comms.codec import BusCodec, FrameCodec, FrameError
from cellwarden.comms.dbc import DBC_NAMES, dbc_path, load_dbc
from cellwarden.comms.e2e import frame_crc

ENCODE_TRIALS = 24  # per message and multiplexer value
DECODE_TRIALS = 24  # per message (multiplexed: four times as many)
MIN_CASES = 500  # per DBC file and direction


# Layouts the shipped files do not (yet) use: signed and Motorola signals of odd widths across
# bytes, a multiplexer with a value table, integer scaling, an extended identifier, a signal
# without range, and a float signal (left to cantools).
SYNTHETIC_DBC = """VERSION ""

NS_ :

BS_:

BU_: A B

BO_ 100 Mixed: 8 A
 SG_ M_Alive : 0|4@1+ (1,0) [0|15] "" B
 SG_ M_Signed : 4|12@1- (0.5,-3) [-1000|1000] "" B
 SG_ M_Motorola : 23|13@0+ (0.01,0) [0|81.91] "" B
 SG_ M_MotoSigned : 39|9@0- (1,0) [-256|255] "" B
 SG_ M_Flag : 40|1@1+ (1,0) [0|1] "" B
 SG_ M_IntLin : 41|5@1+ (2,-10) [-10|52] "" B
 SG_ M_Wide : 48|8@1+ (1,0) [0|100] "" B
 SG_ M_Crc : 56|8@1+ (1,0) [0|255] "" B

BO_ 200 Muxed: 8 A
 SG_ X_Mux M : 0|3@1+ (1,0) [0|7] "" B
 SG_ X_Alive : 4|4@1+ (1,0) [0|15] "" B
 SG_ X_A m0 : 8|16@1- (0.1,0) [-3276.8|3276.7] "" B
 SG_ X_B m1 : 15|16@0+ (1,0) [0|65535] "" B
 SG_ X_C m2 : 8|8@1+ (1,0) [0|255] "" B
 SG_ X_C2 m2 : 16|8@1+ (0.5,-40) [-40|87.5] "" B
 SG_ X_Crc : 56|8@1+ (1,0) [0|255] "" B

BO_ 2147483948 Plain: 6 A
 SG_ P_Temp : 0|10@1+ (0.25,-50) [-50|205.75] "degC" B
 SG_ P_Code : 10|6@1+ (1,0) [0|63] "" B
 SG_ P_Big : 23|16@0- (0.01,100) [-227.68|427.67] "" B
 SG_ P_NoRange : 32|16@1+ (1,0) [0|0] "" B

BO_ 400 Floaty: 8 A
 SG_ F_Value : 0|32@1- (1,0) [-1000|1000] "" B
 SG_ F_Count : 32|8@1+ (1,0) [0|255] "" B

VAL_ 200 X_Mux 0 "Zero" 1 "One" 2 "Two" ;
VAL_ 200 X_C 254 "Err" 255 "NA" ;
VAL_ 2147483948 P_Code 63 "Invalid" ;
SIG_VALTYPE_ 400 F_Value : 1;
"""


def _codecs(name: str) -> BusCodec:
    if name == "synthetic":
        return BusCodec(cantools.database.load_string(SYNTHETIC_DBC, strict=True).messages)
    if not os.path.exists(dbc_path(name)):
        pytest.skip(f"{name}.dbc is not shipped yet")
    return BusCodec(load_dbc(name).messages)  # fresh codecs: no state shared with other tests


# --- the reference: cantools with the codec's documented semantics --------------------------
def _saturated(signal: Signal | None, value):
    if signal is None or signal.minimum is None or signal.maximum is None or isinstance(value, str):
        return value
    number = 0.0 if math.isnan(value) else float(value)
    return min(max(number, float(signal.minimum)), float(signal.maximum))


def _reference_encode(codec: FrameCodec, values: dict, alive: int | None) -> bytes:
    message: Message = codec.message
    full = {s.name: 0 for s in message.signals if s.multiplexer_ids is None}
    if codec.mux_signal is not None:
        key = int(values.get(codec.mux_signal, 0))
        full.update({s.name: 0 for s in message.signals if key in (s.multiplexer_ids or ())})
    for name, value in values.items():
        signal = next((s for s in message.signals if s.name == name), None)
        full[name] = _saturated(signal, value)
    if codec.alive_signal is not None:
        full[codec.alive_signal] = (alive or 0) % 16
    try:
        data = bytes(message.encode(full, strict=False))
    except Exception as error:
        raise FrameError(str(error)) from error
    if codec.crc_signal is None:
        return data
    return data[:-1] + bytes((frame_crc(codec.frame_id, data[:-1]),))


def _reference_decode(codec: FrameCodec, data: bytes):
    message: Message = codec.message
    try:
        values = message.decode(data, decode_choices=True)
    except Exception as error:
        raise FrameError(str(error)) from error
    values = {k: v if isinstance(v, int | float) else str(v) for k, v in values.items()}
    alive = int(values.pop(codec.alive_signal)) if codec.alive_signal else None
    if codec.crc_signal is not None:
        values.pop(codec.crc_signal)
    crc_ok = codec.crc_signal is None or data[-1] == frame_crc(codec.frame_id, data[:-1])
    return values, alive, crc_ok


def _same(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)  # same signals, same order
    for name, value in theirs.items():
        assert type(ours[name]) is type(value), name
        assert ours[name] == value, name


# --- random inputs -----------------------------------------------------------------------------
def _raw_range(signal: Signal) -> tuple[int, int]:
    if signal.is_signed:
        return -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    return 0, (1 << signal.length) - 1


def _random_value(rng: random.Random, signal: Signal):
    """A physical value for ``signal``: mostly in range, sometimes on (or half-way between)
    raw steps, out of range, NaN or a value-table label."""
    conversion = signal.conversion
    scale, offset = conversion.scale, conversion.offset
    low, high = signal.minimum, signal.maximum
    raw_min, raw_max = _raw_range(signal)
    roll = rng.random()
    if signal.choices and roll < 0.15:
        return str(rng.choice(list(signal.choices.values())))
    if low is None or high is None:  # unlimited: any raw the signal can hold
        return rng.randint(raw_min, raw_max) * scale + offset
    if roll < 0.25:  # exactly on a raw step, or half-way (rounding ties)
        raw = rng.randint(raw_min, raw_max) + (0.5 if rng.random() < 0.5 else 0.0)
        return raw * scale + offset
    if roll < 0.32:
        return math.nan
    if roll < 0.42:  # beyond the range: saturates
        span = max(abs(high - low), 1.0)
        return high + rng.random() * span if rng.random() < 0.5 else low - rng.random() * span
    if roll < 0.5 and scale == 1 and offset == 0:
        return rng.randint(math.ceil(low), math.floor(high))  # an int
    return low + (high - low) * rng.random()


def _branches(codec: FrameCodec) -> list[int | None]:
    if codec.mux_signal is None:
        return [None]
    tree = next(node for node in codec.message.signal_tree if isinstance(node, dict))
    return sorted(tree[codec.mux_signal])


def _frame_signals(codec: FrameCodec, key: int | None) -> list[Signal]:
    return [
        s
        for s in codec.message.signals
        if s.multiplexer_ids is None or (key is not None and key in s.multiplexer_ids)
    ]


def _all_codecs() -> list:
    return [pytest.param(name, id=name) for name in (*DBC_NAMES, "synthetic")]


# --- tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dbc", DBC_NAMES)
def test_every_message_is_compiled(dbc: str) -> None:
    """The compiled path covers every shipped message (else the comparisons below would only
    compare cantools with itself)."""
    codecs = _codecs(dbc)
    assert codecs.by_id
    for codec in codecs.by_id.values():
        layout = codec._layout
        assert layout is not None, codec.name
        for key in _branches(codec):  # each frame layout's generated functions
            assert callable(layout.encoder(key)) and callable(layout.decoder(key))


@pytest.mark.parametrize("dbc", _all_codecs())
def test_encode_matches_cantools_bit_for_bit(dbc: str) -> None:
    codecs = _codecs(dbc)
    rng = random.Random(f"encode-{dbc}")
    frames = [(codec, key) for codec in codecs.by_id.values() for key in _branches(codec)]
    trials = max(ENCODE_TRIALS, MIN_CASES // len(frames) + 1)
    cases = errors = 0
    for codec, key in frames:
        signals = _frame_signals(codec, key)
        for _ in range(trials):
            values: dict = {}
            for signal in signals:
                if signal.name == codec.mux_signal:
                    if key != 0 or rng.random() < 0.5:  # mux 0 may be left unset
                        values[signal.name] = key
                elif rng.random() < 0.85:  # the rest stay unset (zero)
                    values[signal.name] = _random_value(rng, signal)
            if rng.random() < 0.1:  # names the frame does not carry are ignored
                values["NoSuchSignal"] = rng.random()
            alive = rng.choice([None, rng.randint(0, 100)])
            try:
                expected = _reference_encode(codec, values, alive)
            except FrameError:
                with pytest.raises(FrameError):
                    codec.encode(values, alive=alive)
                errors += 1
            else:
                assert codec.encode(values, alive=alive) == expected, (codec.name, values)
                # and by the compiled paths themselves, not by their fallback to cantools:
                # the generated encoder and the signal-by-signal one
                layout = codec._layout
                if layout is None:  # a layout left to cantools (synthetic: float signal)
                    cases += 1
                    continue
                compiled = codec._encode_compiled(layout, values, alive)
                assert compiled == expected, (codec.name, values)
                mux = None if layout.mux is None else int(values.get(layout.mux, 0))
                generic = codec._encode_generic(layout, mux, values, alive)
                assert generic == expected, (codec.name, values)
            cases += 1
    assert cases >= MIN_CASES
    assert errors < cases / 10  # the random values are meant to be encodable


@pytest.mark.parametrize("dbc", _all_codecs())
def test_decode_matches_cantools(dbc: str) -> None:
    codecs = _codecs(dbc)
    rng = random.Random(f"decode-{dbc}")
    cases = refused = 0
    least = max(DECODE_TRIALS, MIN_CASES // len(codecs.by_id) + 1)
    for codec in codecs.by_id.values():
        trials = least * (4 if codec.mux_signal else 1)
        for trial in range(trials):
            data = bytearray(rng.randbytes(codec.length))
            if codec.crc_signal is not None and trial % 2:  # half of them with a valid CRC
                data[-1] = frame_crc(codec.frame_id, bytes(data[:-1]))
            data = bytes(data)
            try:
                values, alive, crc_ok = _reference_decode(codec, data)
            except FrameError:
                with pytest.raises(FrameError, match="multiplexer"):
                    codec.decode(data)
                refused += 1
                continue
            decoded = codec.decode(data)
            _same(decoded.values, values)
            assert (decoded.alive, decoded.crc_ok) == (alive, crc_ok)
            cases += 1
    assert cases >= MIN_CASES
    assert refused > 0 or not any(c.mux_signal for c in codecs.by_id.values())


@pytest.mark.parametrize("dbc", _all_codecs())
def test_round_trip_of_encoded_frames(dbc: str) -> None:
    """Encoded frames decode to what cantools decodes from the same bytes."""
    codecs = _codecs(dbc)
    rng = random.Random(f"round-trip-{dbc}")
    for codec in codecs.by_id.values():
        for key in _branches(codec):
            signals = _frame_signals(codec, key)
            values = {s.name: _random_value(rng, s) for s in signals if s.name != codec.mux_signal}
            if key is not None:
                values[codec.mux_signal] = key
            data = codec.encode(values, alive=7)
            decoded = codec.decode(data)
            expected, alive, crc_ok = _reference_decode(codec, data)
            _same(decoded.values, expected)
            assert decoded.crc_ok and crc_ok
            assert decoded.alive == alive == (7 if codec.alive_signal else None)


def test_synthetic_layouts_compile_except_the_float_signal() -> None:
    codecs = _codecs("synthetic")
    compiled = {codec.name: codec._layout is not None for codec in codecs.by_id.values()}
    assert compiled == {"Mixed": True, "Muxed": True, "Plain": True, "Floaty": False}
    muxed = codecs["Muxed"]
    data = muxed.encode({"X_Mux": 2, "X_C": "NA", "X_C2": 21.5}, alive=5)
    decoded = muxed.decode(data)
    assert decoded.values == {"X_Mux": "Two", "X_C": "NA", "X_C2": 21.5}
    assert (decoded.alive, decoded.crc_ok) == (5, True)
    floaty = codecs["Floaty"]
    assert floaty.decode(floaty.encode({"F_Value": 1.25})).values["F_Value"] == 1.25


def test_error_cases_match() -> None:
    internal = _codecs("internal")
    voltages = internal["CellVoltages_S01"]
    temps = internal["Temperatures_S01"]
    config = internal["SlaveConfig_S01"]
    with pytest.raises(FrameError, match="7 data bytes, expected 8"):
        voltages.decode(bytes(7))
    with pytest.raises(FrameError, match="multiplexer"):
        voltages.decode(bytes([0x0F] + [0] * 7))  # multiplexer value 15 is not defined
    with pytest.raises(FrameError, match="cannot encode"):
        temps.encode({"TES01_Mux": 0, "TES01_Sensor01": "Lukewarm"})  # no such label
    with pytest.raises(FrameError, match="cannot encode"):
        voltages.encode({"CVS01_Mux": 9})  # saturates to 5, whose cells are not given
    # a multiplexer value beyond the range saturates, as cantools is given it
    full = {f"CVS01_Cell{c:02d}": 3.3 for c in (16, 17, 18)}
    assert voltages.encode({"CVS01_Mux": 9, **full}) == voltages._encode_cantools(
        {"CVS01_Mux": 9, **full}, None
    )
    # labels and plain numbers, ints and floats, values of other frames are ignored
    values = {"TES01_Mux": 1, "TES01_Sensor07": "OpenCircuit", "TES01_Sensor08": 25,
              "TES01_Sensor01": 99.0, "Unknown": 1}  # fmt: skip
    assert temps.encode(values, alive=3) == _reference_encode(temps, values, 3)
    decoded = temps.decode(temps.encode(values, alive=3))
    assert decoded.values["TES01_Sensor07"] == "OpenCircuit"
    assert decoded.values["TES01_Sensor08"] == 25.0
    assert "TES01_Sensor01" not in decoded.values
    # infinities saturate too
    assert config.encode({"CfgS01_Cells": math.inf}) == config.encode({"CfgS01_Cells": 18})
    with pytest.raises(TypeError):  # as before: a value that is no number
        config.encode({"CfgS01_Cells": None})


def test_unlimited_signal_out_of_its_bits() -> None:
    codecs = _codecs("inverter")
    keep_alive = next(
        (c for c in codecs.by_id.values() if any(s.length == 64 for s in c.message.signals)),
        None,
    )
    if keep_alive is None:
        pytest.skip("no 64-bit signal in inverter.dbc")
    name = next(s.name for s in keep_alive.message.signals if s.length == 64)
    assert keep_alive.encode({name: 2**64 - 1}) == bytes([0xFF] * 8)
    for bad in (2**64, -1, math.nan):
        with pytest.raises(FrameError):
            keep_alive.encode({name: bad})


# --- the simulated bus that carries the frames --------------------------------------------------
def test_simulated_bus_hands_every_receiver_the_frame_sent() -> None:
    """A ``CanNetwork`` bus shares one message between receivers (no copy per receiver), still
    talks to plain python-can ``virtual`` buses on its channel, and honours filters."""
    import can

    from cellwarden.comms.can_bus import CanNetwork, Frame

    network = CanNetwork()
    sender, first, second = (network.port("bus") for _ in range(3))
    plain = can.Bus(interface="virtual", channel=sender.bus.channel_id, preserve_timestamps=True)
    try:
        frame = Frame(1.5, 0x123, b"\x01\x02", False)
        sender.send(frame)
        assert first.receive() == second.receive() == [frame]
        heard = plain.recv(0.0)
        assert (heard.arbitration_id, bytes(heard.data), heard.timestamp) == (
            0x123,
            b"\x01\x02",
            1.5,
        )
        assert heard.is_rx and sender.receive() == []  # not heard by its sender
        plain.send(can.Message(timestamp=2.0, arbitration_id=0x456, data=b"\x09"))
        assert first.receive() == [Frame(2.0, 0x456, b"\x09", True)]
        sender.send(Frame(3.0, 0x7, bytearray(b"\x05"), False))  # data as bytes on arrival
        assert second.receive() == [Frame(2.0, 0x456, b"\x09", True), Frame(3.0, 0x7, b"\x05")]
        first.bus.set_filters([{"can_id": 0x100, "can_mask": 0x700}])
        sender.send(Frame(4.0, 0x123, b"", False))
        sender.send(Frame(4.0, 0x223, b"", False))
        assert [f.frame_id for f in first.receive()] == [0x123]
        assert (sender.sent, first.received) == (4, 3)
    finally:
        plain.shutdown()
        network.close()
