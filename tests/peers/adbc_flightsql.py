"""Drives kalamdb-server with Apache ADBC's Flight SQL driver (a Go implementation nobody here
wrote) and prints what it saw as one JSON document for the Rust test to check.

usage: python3 adbc_flightsql.py FLIGHT_PORT USER PASSWORD
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa


def main(port: int, user: str, password: str) -> None:
    seen = {}
    # The driver logs in with a Flight handshake (Basic) and uses the session token it gets back.
    with flightsql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={"username": user, "password": password}) as conn:
        info = conn.adbc_get_info()
        seen["vendor_name"] = info.get("vendor_name")
        seen["vendor_version"] = info.get("vendor_version")

        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n, sum(fare) AS total FROM app.trips")
            seen["query"] = cur.fetch_arrow_table().to_pylist()
            cur.execute("SELECT payload->>'kind' AS kind FROM app.events WHERE payload ? 'kind' ORDER BY id")
            seen["json_query"] = cur.fetch_arrow_table().to_pylist()

            rows = pa.table({"id": pa.array([10, 11, 12], pa.int64()), "city": ["Oslo", "Lima", None]})
            seen["ingested"] = cur.adbc_ingest("visits", rows, mode="create", db_schema_name="app")
            more = pa.table({"id": pa.array([13], pa.int64()), "city": ["Pune"]})
            seen["appended"] = cur.adbc_ingest("visits", more, mode="append", db_schema_name="app")
            cur.execute("SELECT id, city FROM app.visits ORDER BY id")
            seen["visits"] = cur.fetch_arrow_table().to_pylist()
        conn.commit()

        objects = conn.adbc_get_objects(depth="tables", db_schema_filter="app").read_all().to_pylist()
        seen["tables"] = sorted(
            f"{catalog['catalog_name']}.{schema['db_schema_name']}.{t['table_name']}:{t['table_type']}"
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for t in schema["db_schema_tables"] or []
        )
        schema = conn.adbc_get_table_schema("trips", db_schema_filter="app")
        seen["trips_schema"] = [f"{field.name}:{field.type}" for field in schema]
        seen["table_types"] = sorted(conn.adbc_get_table_types())

    try:
        flightsql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={"username": user, "password": "wrong"}).close()
        seen["bad_login"] = "accepted"
    except Exception as error:  # the driver raises its own error types
        seen["bad_login"] = str(error)
    print(json.dumps(seen))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
