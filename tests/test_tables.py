"""journeyman's own tables: created when absent, upgraded in place when a version adds columns."""

from journeyman.tables import JOURNEYMAN_TABLES_DDL, declared_columns, ensure_journeyman_tables
from journeyman.warehouse import Warehouse


def test_existing_tables_gain_new_columns_and_keep_their_rows(tmp_path):
    wh = Warehouse(tmp_path / "old.duckdb")
    wh.execute(
        "create schema journeyman; "
        "create table journeyman.decisions (decision_id varchar not null, agent varchar not null)"
    )
    wh.execute("insert into journeyman.decisions values ('d1', 'winback')")
    ensure_journeyman_tables(wh)
    ensure_journeyman_tables(wh)  # idempotent
    columns = {
        r[0]
        for r in wh.rows(
            "select column_name from information_schema.columns "
            "where table_schema = 'journeyman' and table_name = 'decisions'"
        )
    }
    assert columns == {
        c for c, _ in declared_columns(JOURNEYMAN_TABLES_DDL)["journeyman.decisions"]
    }
    assert wh.rows("select decision_id, subject_variant from journeyman.decisions") == [
        ("d1", None)
    ]
