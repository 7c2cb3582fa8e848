"""The configuration model: built-in chemistries and cells, lookup tables, validation errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from cellwarden.model import (
    CellSpec,
    Chemistry,
    ConfigError,
    LimitLevels,
    PackSpec,
    StringSpec,
    SystemSpec,
    Table2D,
    load_cell,
    load_chemistry,
)
from cellwarden.model.library import builtin_names, validate

CHEMISTRIES = ("LFP", "NMC", "LTO")
CELLS = {
    # name: (chemistry, capacity_ah)
    "nmc-21700-5ah": ("NMC", 5.0),
    "nmc-pouch-50ah": ("NMC", 50.0),
    "nmc-prismatic-100ah": ("NMC", 100.0),
    "lfp-prismatic-100ah": ("LFP", 100.0),
    "lfp-prismatic-280ah": ("LFP", 280.0),
    "lto-prismatic-40ah": ("LTO", 40.0),
}


def _chemistry_data(name: str) -> dict[str, Any]:
    return load_chemistry(name).model_dump()


def _standalone(series: int, cell: Any = "nmc-21700-5ah", **string: Any) -> dict[str, Any]:
    return {
        "architecture": "standalone",
        "strings": [{"pack": {"cell": cell, "series": series}, **string}],
    }


def _master_slave(series: int, cells_per_slave: int | None, cell: Any = "lfp-prismatic-280ah"):
    return {
        "architecture": "master-slave",
        "strings": [{"pack": {"cell": cell, "series": series}, "cells_per_slave": cells_per_slave}],
    }


def _cell_with_upper_voltage(mol: float, rsl: float, msl: float) -> dict[str, Any]:
    """An inline NMC 21700 cell table whose own limits raise the upper voltage levels."""
    cell = load_cell("nmc-21700-5ah").model_dump()
    cell["name"] = "nmc-21700-high-voltage"
    limits = cell["chemistry"]["limits"]
    limits["cell_voltage_v"]["upper"] = {"mol": mol, "rsl": rsl, "msl": msl}
    cell["limits"] = limits
    return cell


# --- the built-in library ------------------------------------------------------------------


def test_builtin_names_list_every_entry():
    assert builtin_names("chemistries") == ["lfp", "lto", "nmc"]
    assert set(CELLS) <= set(builtin_names("cells"))


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_builtin_chemistry_loads(name):
    chemistry = load_chemistry(name)
    assert isinstance(chemistry, Chemistry)
    assert chemistry.name == name
    assert load_chemistry(name.lower()) == chemistry
    ocv = chemistry.ocv_v
    assert len(ocv.soc_points) >= 21
    assert ocv.soc_points[0] == 0.0 and ocv.soc_points[-1] == 1.0
    assert 4 <= len(ocv.temp_points_c) <= 5
    assert ocv.temp_points_c[0] <= -20 and ocv.temp_points_c[-1] >= 45


@pytest.mark.parametrize(
    ("name", "nominal_range"), [("NMC", (3.6, 3.7)), ("LFP", (3.2, 3.2)), ("LTO", (2.3, 2.4))]
)
def test_nominal_voltage(name, nominal_range):
    low, high = nominal_range
    assert low <= load_chemistry(name).nominal_voltage_v <= high


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_ocv_monotone_and_inside_the_voltage_limits(name):
    chemistry = load_chemistry(name)
    band = chemistry.limits.cell_voltage_v
    tables = [chemistry.ocv_v] + ([chemistry.ocv_charge_v] if chemistry.ocv_charge_v else [])
    for table in tables:
        values = table.as_array()
        assert (np.diff(values, axis=1) >= 0).all(), "OCV falls as SoC rises"
        assert values.min() >= band.lower.msl
        assert values.max() <= band.upper.msl
        # a rest at full charge sits at or below the recommended safety limit
        assert values[:, -1].max() <= band.upper.rsl


@pytest.mark.parametrize(
    ("name", "empty_v", "full_v"), [("NMC", 3.0, 4.19), ("LFP", 2.5, 3.45), ("LTO", 1.85, 2.65)]
)
def test_ocv_end_points_at_25c(name, empty_v, full_v):
    ocv = load_chemistry(name).ocv_v
    assert ocv.lookup(0.0, 25.0) == pytest.approx(empty_v, abs=0.1)
    assert ocv.lookup(1.0, 25.0) == pytest.approx(full_v, abs=0.03)


def test_ocv_rows_differ_by_a_small_entropic_shift():
    for name in CHEMISTRIES:
        ocv = load_chemistry(name).ocv_v
        values, temps = ocv.as_array(), np.asarray(ocv.temp_points_c)
        slope_mv_per_k = np.diff(values, axis=0) / np.diff(temps)[:, None] * 1000.0
        assert np.abs(slope_mv_per_k).max() < 1.0
        assert np.abs(slope_mv_per_k).max() > 0.01  # the rows are not all equal


def test_lfp_plateau_and_step():
    ocv = load_chemistry("LFP").ocv_v
    plateau = ocv.lookup(np.linspace(0.2, 0.9, 15), 25.0)
    assert plateau.min() >= 3.24 and plateau.max() <= 3.34
    assert ocv.lookup(0.1, 25.0) == pytest.approx(3.2, abs=0.03)
    assert ocv.lookup(0.65, 25.0) - ocv.lookup(0.6, 25.0) > 0.01  # the step near 60-65 %


def test_lfp_charge_branch_above_discharge_branch():
    lfp = load_chemistry("LFP")
    assert lfp.ocv_charge_v is not None
    assert 10 <= lfp.hysteresis_rate <= 100
    soc = np.linspace(0.2, 0.9, 29)
    for temp_c in lfp.ocv_v.temp_points_c:
        gap_v = lfp.ocv_charge_v.lookup(soc, temp_c) - lfp.ocv_v.lookup(soc, temp_c)
        assert gap_v.min() >= 0.010 and gap_v.max() <= 0.025
        for end in (0.0, 1.0):
            end_gap = lfp.ocv_charge_v.lookup(end, temp_c) - lfp.ocv_v.lookup(end, temp_c)
            assert abs(end_gap) < 0.003


def test_other_chemistries_have_no_hysteresis_branch():
    for name in ("NMC", "LTO"):
        assert load_chemistry(name).ocv_charge_v is None


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_resistance_and_time_constant_shapes(name):
    chemistry = load_chemistry(name)
    r, tau = chemistry.resistance_factor, chemistry.time_constant_factor
    assert float(r.lookup(0.5, 25.0)) == pytest.approx(1.0)
    assert float(tau.lookup(0.5, 25.0)) == pytest.approx(1.0)
    assert 1.8 <= r.lookup(0.5, 0.0) <= 3.0
    assert 4.5 <= r.lookup(0.5, -20.0) <= 8.0
    assert 0.7 <= r.lookup(0.5, 45.0) <= 0.9
    assert 1.4 <= r.lookup(0.05, 25.0) <= 2.0
    assert r.lookup(0.0, 25.0) >= r.lookup(0.1, 25.0) > 1.0
    assert 1.0 < r.lookup(1.0, 25.0) <= 1.3
    # resistance rises monotonically into the cold at every SoC
    assert (np.diff(r.as_array(), axis=0) <= 0).all()
    # time constants vary only mildly
    assert tau.as_array().min() >= 0.8 and tau.as_array().max() <= 2.0


@pytest.mark.parametrize(
    ("name", "upper_v", "lower_v"),
    [
        ("NMC", (4.15, 4.20, 4.25), (3.0, 2.8, 2.5)),
        ("LFP", (3.60, 3.65, 3.70), (2.70, 2.60, 2.50)),
        ("LTO", (2.75, 2.80, 2.85), (1.60, 1.55, 1.50)),
    ],
)
def test_voltage_limits(name, upper_v, lower_v):
    band = load_chemistry(name).limits.cell_voltage_v
    assert (band.upper.mol, band.upper.rsl, band.upper.msl) == pytest.approx(upper_v)
    assert (band.lower.mol, band.lower.rsl, band.lower.msl) == pytest.approx(lower_v)


def test_temperature_and_current_limits():
    nmc, lfp, lto = (load_chemistry(name).limits for name in ("NMC", "LFP", "LTO"))
    for limits in (nmc, lfp):
        assert 0.0 <= limits.charge_temp_c.lower.msl <= limits.charge_temp_c.lower.mol <= 5.0
        assert 40.0 <= limits.charge_temp_c.upper.mol <= 45.0
        assert limits.discharge_temp_c.lower.rsl <= -20.0
        assert limits.discharge_temp_c.upper.rsl >= 60.0
    assert lto.charge_temp_c.lower.mol <= -20.0
    assert lto.charge_current_c.upper.mol >= 3 * nmc.charge_current_c.upper.mol
    assert lto.discharge_current_c.upper.mol >= 2 * nmc.discharge_current_c.upper.mol


@pytest.mark.parametrize(
    ("name", "year_fade_pct", "cycles_to_80"),
    [
        ("NMC", (2.0, 3.0), (1200, 2000)),
        ("LFP", (1.0, 2.0), (3000, 6000)),
        ("LTO", (0.5, 1.5), (10000, 20000)),
    ],
)
def test_ageing_magnitudes(name, year_fade_pct, cycles_to_80):
    ageing = load_chemistry(name).ageing
    fade_in_a_year = ageing.calendar_fade_pct_per_sqrt_day * math.sqrt(365.0)
    assert year_fade_pct[0] <= fade_in_a_year <= year_fade_pct[1]
    assert cycles_to_80[0] <= 20.0 / ageing.cycle_fade_pct_per_efc <= cycles_to_80[1]
    assert 30_000 <= ageing.calendar_activation_j_per_mol <= 60_000
    assert 1.5 <= ageing.resistance_growth_per_fade <= 2.5
    assert ageing.reference_temp_c == 25.0


@pytest.mark.parametrize("name", sorted(CELLS))
def test_builtin_cell_loads(name):
    chemistry, capacity_ah = CELLS[name]
    cell = load_cell(name)
    assert isinstance(cell, CellSpec)
    assert cell.name == name
    assert cell.chemistry.name == chemistry
    assert cell.capacity_ah == capacity_ah
    assert cell.effective_limits == cell.chemistry.limits
    assert cell.max_charge_voltage_v == cell.chemistry.limits.cell_voltage_v.upper.mol
    for value in (cell.r0_ohm, cell.r1_ohm, cell.r2_ohm, cell.tau1_s, cell.tau2_s):
        assert isinstance(value, float) and value > 0
    assert 10 <= cell.tau1_s <= 30
    assert 300 <= cell.tau2_s <= 1500
    assert cell.r1_ohm < cell.r0_ohm and cell.r2_ohm < cell.r0_ohm
    assert 900 <= cell.specific_heat_j_per_kg_k <= 1100
    assert 0 < cell.cooling_conductance_w_per_k <= 3.0
    assert cell.neighbour_conductance_w_per_k > 0
    assert 1.0 <= cell.self_discharge_pct_per_month <= 3.0
    # specific energy of a real lithium cell: 50..300 Wh/kg
    wh_per_kg = capacity_ah * cell.chemistry.nominal_voltage_v / cell.mass_kg
    assert 50 <= wh_per_kg <= 300


def test_cell_datasheet_values():
    scooter = load_cell("nmc-21700-5ah")
    assert scooter.r0_ohm == pytest.approx(0.018)
    assert scooter.mass_kg == pytest.approx(0.07)
    assert scooter.cooling_conductance_w_per_k <= 0.05
    assert load_cell("nmc-pouch-50ah").r0_ohm == pytest.approx(0.0012)
    assert load_cell("lfp-prismatic-100ah").r0_ohm == pytest.approx(0.0006)
    storage = load_cell("lfp-prismatic-280ah")
    assert storage.r0_ohm == pytest.approx(0.00025)
    assert storage.mass_kg == pytest.approx(5.4)
    assert storage.cooling_conductance_w_per_k >= 1.0
    assert storage.heat_capacity_j_per_k == pytest.approx(5.4 * storage.specific_heat_j_per_kg_k)


def test_user_cell_file_with_a_builtin_chemistry(tmp_path: Path):
    path = tmp_path / "my-cell.toml"
    path.write_text(
        'name = "my-cell"\nchemistry = "LFP"\ncapacity_ah = 50.0\nr0_ohm = 0.001\n'
        "r1_ohm = 0.0005\ntau1_s = 20.0\nr2_ohm = 0.0004\ntau2_s = 600.0\nmass_kg = 1.0\n"
        "cooling_conductance_w_per_k = 0.2\n"
    )
    cell = load_cell(str(path))
    assert cell.chemistry == load_chemistry("LFP")
    assert cell.specific_heat_j_per_kg_k == 1000.0  # the schema default


# --- Table2D ---------------------------------------------------------------------------------


def _small_table() -> Table2D:
    return Table2D(
        soc_points=[0.0, 0.5, 1.0],
        temp_points_c=[0.0, 20.0],
        values=[[1.0, 2.0, 4.0], [3.0, 5.0, 9.0]],
    )


def test_table_lookup_is_bilinear():
    table = _small_table()
    # soc 0.25 is halfway between columns 0 and 1: 1.5 at 0 °C, 4.0 at 20 °C;
    # 5 °C is a quarter of the way from 0 to 20 °C: 1.5 + 0.25 * (4.0 - 1.5) = 2.125
    assert float(table.lookup(0.25, 5.0)) == pytest.approx(2.125)
    # at grid points the table's own values come back
    assert float(table.lookup(0.5, 20.0)) == pytest.approx(5.0)
    assert float(table.lookup(1.0, 0.0)) == pytest.approx(4.0)
    # soc 0.75: 3.0 at 0 °C and 7.0 at 20 °C; 15 °C -> 3.0 + 0.75 * 4.0 = 6.0
    assert float(table.lookup(0.75, 15.0)) == pytest.approx(6.0)


def test_table_lookup_holds_the_edges_and_broadcasts():
    table = _small_table()
    assert float(table.lookup(1.2, 30.0)) == pytest.approx(9.0)
    assert float(table.lookup(-0.1, -10.0)) == pytest.approx(1.0)
    # 10 °C is midway: soc 0.25 -> (1.5 + 4.0) / 2, soc 0.75 -> (3.0 + 7.0) / 2
    result = table.lookup(np.array([0.25, 0.75]), 10.0)
    assert result.shape == (2,)
    assert result == pytest.approx([2.75, 5.0])
    grid = table.lookup(np.array([[0.0], [1.0]]), np.array([0.0, 20.0]))
    assert grid.shape == (2, 2)
    np.testing.assert_allclose(grid, [[1.0, 3.0], [4.0, 9.0]])


def test_table_resample_matches_lookup():
    table = _small_table()
    soc, temps = np.array([0.1, 0.6, 0.9]), np.array([-5.0, 10.0, 25.0])
    resampled = table.resample(soc, temps)
    assert resampled.shape == (3, 3)
    for i, temp_c in enumerate(temps):
        assert resampled[i] == pytest.approx(table.lookup(soc, temp_c))


def test_builtin_ocv_lookup_matches_hand_interpolation():
    ocv = load_chemistry("NMC").ocv_v
    soc_axis, temp_axis, values = ocv.soc_points, ocv.temp_points_c, ocv.values
    # a point inside the cell spanned by columns j, j+1 and rows i, i+1
    j = soc_axis.index(0.5)
    i = temp_axis.index(0.0)
    soc = soc_axis[j] + 0.4 * (soc_axis[j + 1] - soc_axis[j])
    temp_c = temp_axis[i] + 0.6 * (temp_axis[i + 1] - temp_axis[i])
    low = values[i][j] * 0.6 + values[i][j + 1] * 0.4
    high = values[i + 1][j] * 0.6 + values[i + 1][j + 1] * 0.4
    expected = low * 0.4 + high * 0.6
    assert float(ocv.lookup(soc, temp_c)) == pytest.approx(expected, abs=1e-12)


def test_table_rejects_a_row_of_the_wrong_length():
    with pytest.raises(ValidationError) as excinfo:
        Table2D(
            soc_points=[0.0, 0.5, 1.0],
            temp_points_c=[0.0, 25.0],
            values=[[1.0, 2.0, 3.0], [1.0, 2.0]],
        )
    assert "values row 1 has 2 entries but there are 3 soc_points" in str(excinfo.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"soc_points": [0.0, 0.5, 0.4], "temp_points_c": [25.0], "values": [[1, 2, 3]]},
            "strictly increasing",
        ),
        ({"soc_points": [0.0, 1.5], "temp_points_c": [25.0], "values": [[1, 2]]}, "within 0..1"),
        (
            {"soc_points": [0.0, 1.0], "temp_points_c": [0.0, 25.0], "values": [[1, 2]]},
            "values has 1 rows but there are 2 temp_points_c",
        ),
        (
            {"soc_points": [0.0, 1.0], "temp_points_c": [25.0], "values": [[1, float("nan")]]},
            "finite",
        ),
    ],
)
def test_table_rejects_bad_grids(table, message):
    with pytest.raises(ValidationError) as excinfo:
        Table2D.model_validate(table)
    assert message in str(excinfo.value)


# --- architecture rules ---------------------------------------------------------------------


def test_standalone_13s_nmc():
    system = SystemSpec.model_validate(_standalone(13))
    pack = system.strings[0].pack
    assert isinstance(pack, PackSpec)
    assert system.cell_count == 13
    assert pack.max_operating_voltage_v == pytest.approx(13 * 4.15)
    assert pack.nominal_voltage_v == pytest.approx(13 * 3.65)


def test_standalone_20s_is_rejected_naming_series_and_range():
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_standalone(20))
    message = str(excinfo.value)
    assert "series = 20" in message
    assert "6..16" in message


def test_standalone_5s_is_rejected():
    with pytest.raises(ValidationError, match=r"series = 5 .*6\.\.16"):
        SystemSpec.model_validate(_standalone(5))


def test_standalone_18s_nmc_is_accepted_below_75_6_v():
    system = SystemSpec.model_validate(_standalone(18))
    assert system.strings[0].pack.max_operating_voltage_v == pytest.approx(18 * 4.15)  # 74.7 V


def test_standalone_18s_above_4_2_v_per_cell_is_rejected():
    cell = _cell_with_upper_voltage(4.25, 4.30, 4.35)
    # 17 cells at 4.25 V = 72.25 V is inside the extended range
    accepted = SystemSpec.model_validate(_standalone(17, cell=cell))
    assert accepted.strings[0].pack.max_operating_voltage_v == pytest.approx(72.25)
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_standalone(18, cell=cell))
    message = str(excinfo.value)
    assert "series = 18" in message and "6..16" in message
    assert "76.5 V" in message  # 18 x 4.25 V


def test_standalone_18s_at_exactly_4_2_v_per_cell_is_accepted():
    cell = _cell_with_upper_voltage(4.20, 4.25, 4.30)
    system = SystemSpec.model_validate(_standalone(18, cell=cell))
    assert system.strings[0].pack.max_operating_voltage_v == pytest.approx(75.6)


def test_standalone_19s_is_rejected_even_at_low_voltage():
    with pytest.raises(ValidationError, match="series = 19"):
        SystemSpec.model_validate(_standalone(19, cell="lfp-prismatic-100ah"))


def test_mosfet_power_path_current_limit():
    ok = SystemSpec.model_validate(
        _standalone(
            16, cell="lfp-prismatic-100ah", power_path={"kind": "mosfet", "max_current_a": 250}
        )
    )
    assert ok.strings[0].power_path.max_current_a == 250
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(
            _standalone(
                16, cell="lfp-prismatic-100ah", power_path={"kind": "mosfet", "max_current_a": 300}
            )
        )
    message = str(excinfo.value)
    assert "max_current_a = 300" in message
    assert "250" in message


def test_contactors_may_carry_more_than_250_a_standalone():
    system = SystemSpec.model_validate(
        _standalone(
            16, cell="lfp-prismatic-280ah", power_path={"kind": "contactors", "max_current_a": 400}
        )
    )
    assert system.strings[0].power_path.max_current_a == 400


def test_standalone_has_no_slaves():
    with pytest.raises(ValidationError, match="cells_per_slave"):
        SystemSpec.model_validate(_standalone(13, cells_per_slave=12))


def test_standalone_has_one_string():
    data = _standalone(13)
    data["strings"][0]["count"] = 2
    with pytest.raises(ValidationError, match="exactly 1 string"):
        SystemSpec.model_validate(data)


@pytest.mark.parametrize(
    ("series", "per_slave", "slaves"), [(24, 12, 2), (192, 12, 16), (288, 18, 16), (5, 12, 1)]
)
def test_master_slave_accepted(series, per_slave, slaves):
    system = SystemSpec.model_validate(_master_slave(series, per_slave))
    assert system.strings[0].slaves == slaves


def test_master_slave_rejects_ten_cells_per_slave():
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_master_slave(120, 10))
    message = str(excinfo.value)
    assert "cells_per_slave = 10" in message
    assert "12 or 18" in message


def test_master_slave_rejects_missing_cells_per_slave():
    with pytest.raises(ValidationError, match="cells_per_slave = None"):
        SystemSpec.model_validate(_master_slave(120, None))


def test_master_slave_rejects_17_slaves():
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_master_slave(204, 12))  # 204 / 12 = 17 slaves
    message = str(excinfo.value)
    assert "17 slaves" in message
    assert "1..16" in message


def test_master_slave_rejects_more_than_288_series():
    with pytest.raises(ValidationError, match=r"series = 300 .*5\.\.288"):
        SystemSpec.model_validate(_master_slave(300, 18))


def test_master_slave_rejects_mosfets():
    data = _master_slave(24, 12)
    data["strings"][0]["power_path"] = {"kind": "mosfet"}
    with pytest.raises(ValidationError, match="contactors"):
        SystemSpec.model_validate(data)


def test_string_above_1500_v_is_rejected():
    # 288 cells whose own limits allow 5.3 V each: 1526 V
    cell = _cell_with_upper_voltage(5.3, 5.35, 5.4)
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_master_slave(288, 18, cell=cell))
    message = str(excinfo.value)
    assert "1526 V" in message
    assert "1500" in message


def test_series_stack_above_1500_v_is_rejected():
    strings = [
        {"pack": {"cell": "nmc-prismatic-100ah", "series": 200}, "cells_per_slave": 18, "count": 2}
    ]
    parallel = SystemSpec.model_validate(
        {"architecture": "multi-master", "topology": "parallel", "strings": strings}
    )
    assert parallel.string_count == 2
    assert [s.name for s in parallel.expanded_strings()] == ["string-1.1", "string-1.2"]
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(
            {"architecture": "multi-master", "topology": "series", "strings": strings}
        )
    message = str(excinfo.value)
    assert "1660 V" in message  # 2 x 200 x 4.15 V
    assert "1500" in message


def test_multi_master_string_count_range():
    string = {"pack": {"cell": "lfp-prismatic-280ah", "series": 16}, "cells_per_slave": 18}
    pilot = SystemSpec.model_validate({"architecture": "multi-master", "strings": [string]})
    assert pilot.string_count == 1  # a pilot rack behind its system master, ready to grow
    with pytest.raises(ValidationError, match=r"17 strings are outside the allowed range 1\.\.16"):
        SystemSpec.model_validate(
            {"architecture": "multi-master", "strings": [{**string, "count": 17}]}
        )


def test_string_spec_direct():
    string = StringSpec.model_validate(
        {"pack": {"cell": "lfp-prismatic-280ah", "series": 16, "parallel": 2}}
    )
    assert string.slaves == 0
    assert string.pack.cell_count == 32
    assert string.pack.capacity_ah == pytest.approx(560.0)


def test_unknown_architecture_is_rejected():
    data = _standalone(13)
    data["architecture"] = "daisy"
    with pytest.raises(ValidationError, match="architecture"):
        SystemSpec.model_validate(data)


# --- chemistry and cell rules ----------------------------------------------------------------


def test_limit_levels_out_of_order_are_rejected():
    data = _chemistry_data("NMC")
    data["limits"]["cell_voltage_v"]["upper"] = {"mol": 4.2, "rsl": 4.15, "msl": 4.25}
    with pytest.raises(ConfigError) as excinfo:
        validate(Chemistry, data, "nmc-edited.toml")
    message = str(excinfo.value)
    assert "nmc-edited.toml" in message
    assert "limits.cell_voltage_v" in message
    assert "mol <= rsl <= msl" in message
    assert "(4.2, 4.15, 4.25)" in message


def test_lower_limit_levels_must_fall():
    data = _chemistry_data("LFP")
    data["limits"]["charge_temp_c"]["lower"] = {"mol": 0.0, "rsl": 2.0, "msl": 5.0}
    with pytest.raises(ConfigError, match=r"limits\.charge_temp_c.*mol >= rsl >= msl"):
        validate(Chemistry, data, "lfp-edited.toml")


def test_current_limit_must_be_positive():
    data = _chemistry_data("LTO")
    data["limits"]["charge_current_c"]["upper"] = {"mol": 0.0, "rsl": 1.0, "msl": 2.0}
    with pytest.raises(ConfigError, match=r"limits\.charge_current_c.*positive"):
        validate(Chemistry, data, "lto-edited.toml")


def test_limit_levels_model():
    levels = LimitLevels(mol=1.0, rsl=2.0, msl=3.0)
    with pytest.raises(ValidationError):
        levels.mol = 5.0  # frozen
    with pytest.raises(ValidationError, match="extra"):
        LimitLevels.model_validate({"mol": 1.0, "rsl": 2.0, "msl": 3.0, "typo": 4.0})


def test_falling_ocv_is_rejected():
    data = _chemistry_data("NMC")
    data["ocv_v"]["values"][2][5] = 4.5
    with pytest.raises(ConfigError, match="ocv_v must not fall"):
        validate(Chemistry, data, "test")


def test_nominal_voltage_outside_the_safety_limits_is_rejected():
    data = _chemistry_data("LTO")
    data["nominal_voltage_v"] = 3.7
    with pytest.raises(ConfigError) as excinfo:
        validate(Chemistry, data, "test")
    assert "nominal_voltage_v 3.7" in str(excinfo.value)
    assert "1.5..2.85" in str(excinfo.value)


def test_charge_branch_needs_a_hysteresis_rate():
    data = _chemistry_data("LFP")
    data["hysteresis_rate"] = 0.0
    with pytest.raises(ConfigError, match="hysteresis_rate must be positive"):
        validate(Chemistry, data, "test")


def test_cell_field_errors_name_field_and_value():
    data = load_cell("nmc-pouch-50ah").model_dump()
    data["capacity_ah"] = -5.0
    with pytest.raises(ConfigError) as excinfo:
        validate(CellSpec, data, "pouch.toml")
    message = str(excinfo.value)
    assert "pouch.toml" in message
    assert "capacity_ah" in message
    assert "-5.0" in message
    assert "greater than 0" in message


def test_cell_unknown_field_is_named():
    data = load_cell("nmc-pouch-50ah").model_dump()
    data["capacity_mah"] = 50000
    with pytest.raises(ConfigError, match="capacity_mah"):
        validate(CellSpec, data, "pouch.toml")


def test_system_errors_through_validate_are_config_errors():
    with pytest.raises(ConfigError) as excinfo:
        validate(SystemSpec, _standalone(20), "scooter.toml")
    message = str(excinfo.value)
    assert "scooter.toml" in message
    assert "series = 20" in message and "6..16" in message


# --- files and names ---------------------------------------------------------------------------


def test_malformed_toml_names_the_path(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "NMC"\nnominal_voltage_v = = 3.6\n')
    for loader in (load_chemistry, load_cell):
        with pytest.raises(ConfigError) as excinfo:
            loader(str(path))
        assert str(path) in str(excinfo.value)
        assert "not valid TOML" in str(excinfo.value)


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "cell.toml"
    with pytest.raises(ConfigError) as excinfo:
        load_cell(str(path))
    assert str(path) in str(excinfo.value)
    assert "not found" in str(excinfo.value)


def test_invalid_user_file_names_the_path_and_field(tmp_path: Path):
    path = tmp_path / "cell.toml"
    path.write_text('name = "x"\nchemistry = "NMC"\ncapacity_ah = 5000.0\n')
    with pytest.raises(ConfigError) as excinfo:
        load_cell(str(path))
    message = str(excinfo.value)
    assert str(path) in message
    assert "capacity_ah" in message and "5000.0" in message
    assert "r0_ohm" in message  # missing required fields are listed too


def test_unknown_cell_lists_the_builtin_ones():
    with pytest.raises(ConfigError) as excinfo:
        load_cell("nmc-18650-3ah")
    message = str(excinfo.value)
    assert "nmc-18650-3ah" in message
    for name in CELLS:
        assert name in message


def test_unknown_chemistry_lists_the_builtin_ones():
    with pytest.raises(ConfigError) as excinfo:
        load_chemistry("LMO")
    message = str(excinfo.value)
    assert "'LMO'" in message
    assert "lfp, lto, nmc" in message


def test_unknown_cell_in_a_system_is_a_validation_error():
    with pytest.raises(ValidationError) as excinfo:
        SystemSpec.model_validate(_standalone(13, cell="no-such-cell"))
    message = str(excinfo.value)
    assert "strings.0.pack.cell" in message
    assert "nmc-21700-5ah" in message
