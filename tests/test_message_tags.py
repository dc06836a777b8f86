"""journeyman.message_tags keeps the history of every message's tags, by decision day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from journeyman import settings
from journeyman.decisioning.config import AgentConfig, load_agent
from journeyman.decisioning.store import write_message_tags
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def winback(folder: Path, ten_off_offer: str = "discount_10") -> AgentConfig:
    """The shipped win-back agent, its `ten_off` message's offer tag set to `ten_off_offer`."""
    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    for message in data["dimensions"]["messages"]:
        if message["id"] == "ten_off":
            message["tags"]["offer"] = ten_off_offer
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "winback.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_agent(path)


def history(warehouse: Warehouse, tag: str = "offer") -> set[tuple]:
    return set(
        warehouse.rows(
            "select value, valid_from, valid_to from journeyman.message_tags "
            "where message_id = 'ten_off' and tag = :tag",
            {"tag": tag},
        )
    )


def test_tag_changes_close_the_old_value_and_open_the_new(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    ensure_journeyman_tables(warehouse)
    agent = winback(tmp_path / "v1")
    stated = sum(len(m.tags) for m in agent.dimensions.messages)
    assert write_message_tags(warehouse, [agent], DAY1) == stated
    assert write_message_tags(warehouse, [agent], DAY2) == 0  # unchanged: nothing new
    assert warehouse.scalar("select count(*) from journeyman.message_tags") == stated
    assert history(warehouse) == {("discount_10", DAY1, None)}

    assert write_message_tags(warehouse, [winback(tmp_path / "v2", "discount_20")], DAY3) == 1
    assert history(warehouse) == {("discount_10", DAY1, DAY3), ("discount_20", DAY3, None)}
    assert history(warehouse, "tone") == {("friendly", DAY1, None)}  # untouched

    # the file changed again and day 3 is re-run: the value opened on day 3 is replaced
    write_message_tags(warehouse, [winback(tmp_path / "v3", "free_shipping")], DAY3)
    assert history(warehouse) == {("discount_10", DAY1, DAY3), ("free_shipping", DAY3, None)}

    # re-running an earlier day leaves the history as the later runs recorded it
    assert write_message_tags(warehouse, [winback(tmp_path / "v1")], DAY2) == 0
    assert history(warehouse) == {("discount_10", DAY1, DAY3), ("free_shipping", DAY3, None)}


def test_a_removed_tag_closes_and_an_earlier_day_does_not_reopen_it(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    ensure_journeyman_tables(warehouse)
    write_message_tags(warehouse, [winback(tmp_path / "v1")], DAY1)
    data = yaml.safe_load((tmp_path / "v1" / "winback.yml").read_text())
    for message in data["dimensions"]["messages"]:
        message["tags"].pop("tone")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "winback.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert write_message_tags(warehouse, [load_agent(tmp_path / "v2" / "winback.yml")], DAY3) == 0
    assert history(warehouse, "tone") == {("friendly", DAY1, DAY3)}
    # day 2 re-run with the old file: the tone it states is history already, not a new row
    assert write_message_tags(warehouse, [winback(tmp_path / "v1")], DAY2) == 0
    assert history(warehouse, "tone") == {("friendly", DAY1, DAY3)}


def test_rows_from_before_the_history_close_like_any_other(tmp_path: Path) -> None:
    """A warehouse written by an older journeyman: tag rows without valid_from."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    ensure_journeyman_tables(warehouse)
    warehouse.execute(
        "insert into journeyman.message_tags (agent, message_id, tag, value) "
        "values ('winback', 'ten_off', 'offer', 'discount_10')"
    )
    write_message_tags(warehouse, [winback(tmp_path / "v2", "discount_20")], DAY1)
    assert history(warehouse) == {("discount_10", None, DAY1), ("discount_20", DAY1, None)}
