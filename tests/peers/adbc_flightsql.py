"""Drives kalamdb-server with Apache ADBC's Flight SQL driver (a Go implementation nobody here
wrote) and prints what it saw as one JSON document for the Rust test to check.

usage: python3 adbc_flightsql.py FLIGHT_PORT
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql


def main(port: int) -> None:
    seen = {}
    with flightsql.connect(f"grpc://127.0.0.1:{port}") as conn:
        info = conn.adbc_get_info()
        seen["vendor_name"] = info.get("vendor_name")
        seen["vendor_version"] = info.get("vendor_version")

        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n, sum(fare) AS total FROM app.trips")
            table = cur.fetch_arrow_table()
            seen["query"] = table.to_pylist()
            cur.execute("SELECT payload->>'kind' AS kind FROM app.events WHERE payload ? 'kind' ORDER BY id")
            seen["json_query"] = cur.fetch_arrow_table().to_pylist()

        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        seen["tables"] = sorted(
            f"{catalog['catalog_name']}.{schema['db_schema_name']}.{t['table_name']}:{t['table_type']}"
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for t in schema["db_schema_tables"] or []
        )
        schema = conn.adbc_get_table_schema("trips", db_schema_filter="app")
        seen["trips_schema"] = [f"{field.name}:{field.type}" for field in schema]
        seen["table_types"] = sorted(conn.adbc_get_table_types())
    print(json.dumps(seen))


if __name__ == "__main__":
    main(int(sys.argv[1]))
