"""What a data engineer does with kalamdb-server through Apache ADBC's Flight SQL driver (Go) and
its Python DBAPI, with pandas reading results. Prints what it saw as one JSON document for the
Rust test to check.

usage: python3 adbc_dbapi.py FLIGHT_PORT USER PASSWORD
"""
import datetime
import decimal
import json
import sys
import uuid

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa

EVERY_TYPE = """CREATE TABLE shop.every (
    id BIGINT PRIMARY KEY, u UUID, j JSON, jb JSONB, f FILE, e EMBEDDING(3), ts TIMESTAMP,
    tz TIMESTAMPTZ, tm TIME, d DECIMAL(10,2), b BYTEA, ints INT[], day DATE, flag BOOLEAN,
    small SMALLINT, n INT, r REAL, name TEXT)"""

U1 = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
U2 = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def plain(value):
    """A value as JSON can hold it, keeping its type visible."""
    if isinstance(value, uuid.UUID):
        return f"uuid:{value}"
    if isinstance(value, bytes):
        return f"bytes:{value.hex()}"
    if isinstance(value, decimal.Decimal):
        return f"decimal:{value}"
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return f"{type(value).__name__}:{value.isoformat()}"
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def error_of(action):
    try:
        action()
    except Exception as error:  # the driver raises its own DBAPI error classes
        return f"{type(error).__name__}: {error}"
    return "no error"


def main(port: int, user: str, password: str) -> None:
    uri = f"grpc://127.0.0.1:{port}"
    login = {"username": user, "password": password}
    seen = {}
    with flightsql.connect(uri, db_kwargs=login, autocommit=True) as conn, conn.cursor() as cur:
        # DDL through cursor.execute: DBAPI sends every statement as a Flight SQL query.
        cur.execute("CREATE NAMESPACE IF NOT EXISTS shop")
        seen["create_namespace"] = {"rowcount": cur.rowcount, "rows": cur.fetchall()}
        cur.execute(EVERY_TYPE)
        seen["create_table"] = cur.fetchall()

        # One row with parameters (qmark style), every type from its Python value.
        cur.execute(
            "INSERT INTO shop.every (id, u, j, jb, f, e, ts, tz, tm, d, b, ints, day, flag, small, n, r, name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                1,
                str(U1),
                json.dumps({"kind": "rare", "tags": ["a", "b"]}),
                "[1, 2]",
                json.dumps({"id": "f1", "name": "photo.png", "size": 1024}),
                [0.5, 1.5, -2.0],
                datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
                datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
                datetime.time(23, 59, 59, 999999),
                decimal.Decimal("12345678.91"),
                b"\x00\xff",
                [1, None, 3],
                datetime.date(2024, 2, 29),
                True,
                -32768,
                2147483647,
                1.5,
                "first",
            ),
        )
        seen["insert"] = {"rowcount": cur.rowcount, "rows": cur.fetchall()}

        # Many rows at once; the row count of all of them.
        cur.executemany(
            "INSERT INTO shop.every (id, u, d, name) VALUES (?, ?, ?, ?)",
            [(2, U2.bytes, decimal.Decimal("1.50"), "second"), (3, None, None, "third")],
        )
        seen["executemany_rowcount"] = cur.rowcount
        cur.execute("UPDATE shop.every SET name = name || '!' WHERE id >= ?", (2,))
        seen["update"] = {"rowcount": cur.rowcount, "rows": cur.fetchall()}

        # Bulk ingest of an Arrow table, with Arrow's uuid and json extension types.
        rows = pa.table(
            {
                "id": pa.array([10, 11], pa.int64()),
                "u": pa.array([U1.bytes, None], pa.uuid()),
                "j": pa.array(['{"kind": "common"}', None], pa.json_()),
                "e": pa.array([[1.0, 2.0, 3.0], None], pa.list_(pa.float32(), 3)),
                "name": ["ten", "eleven"],
            }
        )
        seen["ingested"] = cur.adbc_ingest("every", rows, mode="append", db_schema_name="shop")
        # A new table from an Arrow schema with no rows (sent as one empty batch).
        schema = pa.schema([("id", pa.int64()), ("u", pa.uuid()), ("j", pa.json_())])
        empty = pa.RecordBatchReader.from_batches(schema, [pa.RecordBatch.from_pylist([], schema=schema)])
        seen["ingested_empty"] = cur.adbc_ingest("empty", empty, mode="create", db_schema_name="shop")
        cur.execute("SELECT column_name, data_type FROM system.columns WHERE namespace_id = 'shop' AND table_name = 'empty'")
        seen["empty_columns"] = [f"{c}:{t}" for c, t in cur.fetchall()]

        # Read back as Arrow and into pandas.
        cur.execute("SELECT * FROM shop.every WHERE id = 1")
        table = cur.fetch_arrow_table()
        seen["arrow_schema"] = [f"{field.name}:{field.type}" for field in table.schema]
        seen["arrow_row"] = {k: plain(v) for k, v in table.to_pylist()[0].items()}
        cur.execute("SELECT id, u, name, d FROM shop.every ORDER BY id")
        frame = cur.fetch_df()
        seen["pandas"] = {
            "columns": list(frame.columns),
            "ids": frame["id"].tolist(),
            "names": frame["name"].tolist(),
            "uuids": [None if v is None else str(uuid.UUID(bytes=v) if isinstance(v, bytes) else v) for v in frame["u"]],
            "decimals": [None if v is None or v != v else str(v) for v in frame["d"]],
        }
        cur.execute("SELECT id FROM shop.every WHERE u = ? ORDER BY id", (str(U1),))
        seen["by_uuid"] = cur.fetchall()
        cur.execute("DESCRIBE TABLE shop.every")
        seen["describe"] = [f"{row[0]}:{row[1]}" for row in cur.fetchall()]

        # Bad input: each is an error that says what is wrong; nothing is half-written.
        seen["errors"] = {
            "unknown_type": error_of(lambda: cur.execute("CREATE TABLE shop.bad (x FOO)")),
            "bad_json": error_of(
                lambda: cur.execute("INSERT INTO shop.every (id, j) VALUES (?, ?)", (20, '{"kind": '))
            ),
            "uuid_length": error_of(
                lambda: cur.execute("INSERT INTO shop.every (id, u) VALUES (?, ?)", (21, b"\x01" * 10))
            ),
            "uuid_text": error_of(
                lambda: cur.execute("INSERT INTO shop.every (id, u) VALUES (?, ?)", (22, "not-a-uuid"))
            ),
            "ingest_uuid_length": error_of(
                lambda: cur.adbc_ingest(
                    "every",
                    pa.table({"id": pa.array([23], pa.int64()), "u": pa.array([b"\x01" * 10], pa.binary())}),
                    mode="append",
                    db_schema_name="shop",
                )
            ),
            "ingest_nothing": error_of(
                lambda: cur.adbc_ingest(
                    "nothing", pa.table({"id": pa.array([], pa.int64())}), mode="create", db_schema_name="shop"
                )
            ),
            "int_overflow": error_of(
                lambda: cur.execute("INSERT INTO shop.every (id, n) VALUES (?, ?)", (24, 2**31))
            ),
        }
        cur.execute("SELECT count(*) FROM shop.every WHERE id >= 20")
        seen["after_errors"] = cur.fetchall()

    # A transaction with autocommit off: invisible to others until commit; rollback leaves nothing.
    with flightsql.connect(uri, db_kwargs=login, autocommit=True) as watcher, watcher.cursor() as watch:
        with flightsql.connect(uri, db_kwargs=login) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO shop.every (id, name) VALUES (?, ?)", (100, "uncommitted"))
            cur.execute("SELECT count(*) FROM shop.every WHERE id = 100")
            inside = cur.fetchall()
            watch.execute("SELECT count(*) FROM shop.every WHERE id = 100")
            outside = watch.fetchall()
            conn.rollback()
            watch.execute("SELECT count(*) FROM shop.every WHERE id = 100")
            after_rollback = watch.fetchall()
            cur.execute("INSERT INTO shop.every (id, name) VALUES (?, ?)", (101, "committed"))
            conn.commit()
            watch.execute("SELECT name FROM shop.every WHERE id IN (100, 101)")
            after_commit = watch.fetchall()
        seen["transaction"] = {
            "inside": inside,
            "outside": outside,
            "after_rollback": after_rollback,
            "after_commit": after_commit,
        }
    print(json.dumps(seen, default=plain))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
