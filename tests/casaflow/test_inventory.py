"""The inventory contract: validation with one-line reasons, credentials redacted, incident thresholds set
city-wide and overridden per camera (a typo or a bad value refused at load, naming the camera)."""

import pytest
import yaml

from casaflow.inventory import InventoryError, load_inventory, redact_url, save_inventory


@pytest.fixture
def inventory_data(tiny_city):
    return yaml.safe_load((tiny_city / "cameras.yaml").read_text())


def write(tmp_path, data) -> str:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_city_rules_and_camera_overrides(inventory_data, tmp_path):
    inventory_data["incident_rules"] = {"speeding_tolerance_kmh": 5.0, "stopped_vehicle_s": 20}
    inventory_data["cameras"][1]["incident_rules"] = {"speeding_tolerance_kmh": 15.0}
    inventory = load_inventory(write(tmp_path, inventory_data))
    first, second = inventory.cameras
    assert inventory.rules_for(first).speeding_tolerance_kmh == 5.0
    assert inventory.rules_for(second).speeding_tolerance_kmh == 15.0
    assert inventory.rules_for(second).stopped_vehicle_s == 20
    save_inventory(inventory, tmp_path / "again.yaml")
    assert load_inventory(tmp_path / "again.yaml").rules_for(second).speeding_tolerance_kmh == 15.0
    written = yaml.safe_load((tmp_path / "again.yaml").read_text())["incident_rules"]
    assert written == {"speeding_tolerance_kmh": 5.0, "stopped_vehicle_s": 20}, "defaults follow the code"


@pytest.mark.parametrize(("where", "rules", "message"), [
    ("camera", {"speeding_tolrance_kmh": 5.0}, "incident_rules.speeding_tolrance_kmh"),
    ("camera", {"still_radius_m": -1.0}, "incident_rules.still_radius_m"),
    ("city", {"wrong_way_distance_m": "far"}, "incident_rules.wrong_way_distance_m"),
])
def test_bad_rules_are_refused_with_the_field(inventory_data, tmp_path, where, rules, message):
    if where == "camera":
        inventory_data["cameras"][0]["incident_rules"] = rules
    else:
        inventory_data["incident_rules"] = rules
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, inventory_data))


def test_malformed_inventories(tmp_path, inventory_data):
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("cameras: [unclosed")
    with pytest.raises(InventoryError, match="not valid YAML"):
        load_inventory(tmp_path / "bad.yaml")
    inventory_data["cameras"][1]["id"] = inventory_data["cameras"][0]["id"]
    with pytest.raises(InventoryError, match="duplicate camera ids"):
        load_inventory(write(tmp_path, inventory_data))


def test_redact_url():
    assert redact_url("rtsp://admin:secret@10.0.0.7:554/stream1") == "rtsp://***@10.0.0.7:554/stream1"
    assert redact_url("video/cam01.mp4") == "video/cam01.mp4"
