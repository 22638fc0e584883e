//! Every type of SURFACE §3 read through the real path, with NULLs and edge values, compared
//! with what PostgreSQL itself makes of the same values.

use kalam_e2e::{TestEnv, expect_pg_error};

fn texts(pg: &mut postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    pg.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get::<_, Option<String>>(i)).collect())
        .collect()
}

fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

// Goal: the KalamDB types a table gets from DDL (UUID, JSON, JSONB, FILE, TIMESTAMPTZ,
// microsecond TIMESTAMP and TIME, EMBEDDING(n), INT[]) and from SQL literals read through
// pg_kalam as the PostgreSQL values of the same text.
#[test]
fn kalamdb_ddl_types_read_through_pg_kalam() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql(
        "CREATE TABLE app.kinds (id BIGINT PRIMARY KEY, u UUID, j JSON, jb JSONB, f FILE, tz TIMESTAMPTZ,
            ts TIMESTAMP, tm TIME, e EMBEDDING(3), ints INT[])",
    );
    env.kalam_sql(
        r#"INSERT INTO app.kinds VALUES
          (1, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"kind": "rare", "n": [1, 2]}', '[true, null]',
           '{"id": "f1", "name": "a.png"}', '2024-05-06 07:08:09.123456+02:00', '1900-01-01 00:00:00.000001',
           '23:59:59.999999', ARRAY[0.5, -1.25, 3], ARRAY[1, NULL, 3]),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"#,
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "SET TIME ZONE 'UTC';
         CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.kinds (id bigint, u uuid, j json, jb jsonb, f jsonb, tz timestamptz,
             ts timestamp, tm time, e real[], ints integer[]) SERVER kalam_server;",
    )
    .unwrap();
    let got = texts(
        &mut pg,
        "SELECT u::text, j::text, jb::text, f->>'name', tz::text, ts::text, tm::text, e::text, ints::text
         FROM app.kinds ORDER BY id",
    );
    let expected = texts(
        &mut pg,
        r#"SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid::text, '{"kind": "rare", "n": [1, 2]}'::json::text,
                  '[true, null]'::jsonb::text, 'a.png', '2024-05-06 07:08:09.123456+02:00'::timestamptz::text,
                  '1900-01-01 00:00:00.000001'::timestamp::text, '23:59:59.999999'::time::text,
                  '{0.5,-1.25,3}'::real[]::text, '{1,NULL,3}'::integer[]::text
           UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"#,
    );
    assert_eq!(got, expected);
    assert_eq!(
        texts(&mut pg, "SELECT id::text FROM app.kinds WHERE j->>'kind' = 'rare' AND u IS NOT NULL"),
        vec![row(&[Some("1")])]
    );
}

// Goal: scalar types round-trip exactly: integer limits, NaN, ±Infinity, -0, numeric at 38
// digits, empty and non-ASCII text, bytea with NUL bytes, dates and timestamps before 2000 and
// after 2100, times of day, JSON, and NULL in every column.
#[test]
fn scalar_types_round_trip_with_edge_values() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql(
        "CREATE TABLE app.scalars (id BIGINT, i2 SMALLINT, i4 INT, i8 BIGINT, f4 REAL, f8 DOUBLE, ok BOOLEAN,
            n DECIMAL(38, 10), t VARCHAR, raw BYTEA, d DATE, ts TIMESTAMP, tm TIME, doc VARCHAR)",
    );
    env.kalam_sql(
        "INSERT INTO app.scalars VALUES
          (1, -32768, -2147483648, -9223372036854775808, CAST('NaN' AS REAL), CAST('-Infinity' AS DOUBLE), false,
           CAST('-9999999999999999999999999999.9999999999' AS DECIMAL(38, 10)), '', X'',
           DATE '0001-01-01', TIMESTAMP '1900-01-01 00:00:00.000001', TIME '00:00:00', '{}'),
          (2, 32767, 2147483647, 9223372036854775807, CAST('Infinity' AS REAL), CAST('-0' AS DOUBLE), true,
           CAST('9999999999999999999999999999.9999999999' AS DECIMAL(38, 10)), 'γράμμα ✓ 日本', X'00ff10',
           DATE '9999-12-31', TIMESTAMP '2150-06-01 12:30:45.123456', TIME '23:59:59.999999',
           '{\"a\": [1, 2.50, {\"b\": null}], \"c\": \"ü\"}'),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (4, 0, 0, 0, CAST(1.5 AS REAL), 0.1, true, CAST('0.0000000001' AS DECIMAL(38, 10)), 'x', X'41',
           DATE '1999-12-31', TIMESTAMP '1999-12-31 23:59:59.999999', TIME '12:00:00.5', '[]')",
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.scalars (id bigint, i2 smallint, i4 integer, i8 bigint, f4 real,
             f8 double precision, ok boolean, n numeric(38, 10), t text, raw bytea, d date, ts timestamp,
             tm time, doc jsonb) SERVER kalam_server;
         CREATE FOREIGN TABLE app.scalars_json (id bigint, doc json, n numeric) SERVER kalam_server
             OPTIONS (table 'scalars');",
    )
    .unwrap();
    let got = texts(
        &mut pg,
        "SELECT i2::text, i4::text, i8::text, f4::text, f8::text, ok::text, n::text, t, raw::text, d::text,
                ts::text, tm::text, doc::text FROM app.scalars ORDER BY id",
    );
    let expected = vec![
        row(&[
            Some("-32768"),
            Some("-2147483648"),
            Some("-9223372036854775808"),
            Some("NaN"),
            Some("-Infinity"),
            Some("false"),
            Some("-9999999999999999999999999999.9999999999"),
            Some(""),
            Some("\\x"),
            Some("0001-01-01"),
            Some("1900-01-01 00:00:00.000001"),
            Some("00:00:00"),
            Some("{}"),
        ]),
        row(&[
            Some("32767"),
            Some("2147483647"),
            Some("9223372036854775807"),
            Some("Infinity"),
            Some("-0"),
            Some("true"),
            Some("9999999999999999999999999999.9999999999"),
            Some("γράμμα ✓ 日本"),
            Some("\\x00ff10"),
            Some("9999-12-31"),
            Some("2150-06-01 12:30:45.123456"),
            Some("23:59:59.999999"),
            Some(r#"{"a": [1, 2.50, {"b": null}], "c": "ü"}"#),
        ]),
        vec![None; 13],
        row(&[
            Some("0"),
            Some("0"),
            Some("0"),
            Some("1.5"),
            Some("0.1"),
            Some("true"),
            Some("0.0000000001"),
            Some("x"),
            Some("\\x41"),
            Some("1999-12-31"),
            Some("1999-12-31 23:59:59.999999"),
            Some("12:00:00.5"),
            Some("[]"),
        ]),
    ];
    assert_eq!(got, expected);

    // Datums are what PostgreSQL's own input functions make: equal, and of the same size
    // (numeric in its short form, jsonb normalized).
    let mismatches: i64 = pg
        .query_one(
            "SELECT count(*) FROM app.scalars WHERE n IS NOT NULL AND
                 (n <> n::text::numeric OR pg_column_size(n) <> pg_column_size(n::text::numeric)
                  OR doc <> doc::text::jsonb OR pg_column_size(doc) <> pg_column_size(doc::text::jsonb))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mismatches, 0);
    // json keeps the text as sent; unconstrained numeric keeps the remote scale.
    let got = texts(&mut pg, "SELECT doc::text, n::text FROM app.scalars_json WHERE id = 4");
    assert_eq!(got, vec![row(&[Some("[]"), Some("0.0000000001")])]);
}

// Goal: numeric is exact across precisions and scales: thousands of generated decimals equal
// PostgreSQL's parse of the server's own text for them, byte for byte.
#[test]
fn numeric_matches_postgres_parse_of_server_text() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.nums (id BIGINT, n0 DECIMAL(18, 0), n2 DECIMAL(15, 2), n9 DECIMAL(38, 9), n38 DECIMAL(38, 38))");
    env.kalam_sql(
        "INSERT INTO app.nums SELECT value,
            CAST(CAST((value * 982451653) % 999999999999999999 - 499999999999999999 AS VARCHAR) AS DECIMAL(18, 0)),
            CAST(CAST((value * 7919) % 100000000000 - 50000000000 AS VARCHAR) || '.' || CAST(value % 100 AS VARCHAR) AS DECIMAL(15, 2)),
            CAST(CAST((value * 2147483647) % 100000000000000000 AS VARCHAR) || CAST(value * 104729 AS VARCHAR) || '.' ||
                 CAST((value * 31) % 1000000000 AS VARCHAR) AS DECIMAL(38, 9)),
            CAST('0.' || CAST(value * 1234567 AS VARCHAR) AS DECIMAL(38, 38))
         FROM generate_series(1, 3000)",
    );
    env.kalam_sql(
        "CREATE VIEW app.nums_text AS SELECT id, n0, CAST(n0 AS VARCHAR) AS n0_text, n2, CAST(n2 AS VARCHAR) AS n2_text,
            n9, CAST(n9 AS VARCHAR) AS n9_text, n38, CAST(n38 AS VARCHAR) AS n38_text FROM app.nums",
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE FOREIGN TABLE nums (id bigint, n0 numeric, n0_text text, n2 numeric(15, 2), n2_text text,
             n9 numeric(38, 9), n9_text text, n38 numeric, n38_text text)
         SERVER kalam_server OPTIONS (namespace 'app', table 'nums_text')",
    )
    .unwrap();
    // Compared in WHERE, on the scan's own tuples: an aggregate would copy a row into a heap
    // tuple first, which packs varlena headers and hides what the scan produced.
    let mismatched = texts(
        &mut pg,
        "SELECT id::text FROM nums WHERE
            n0::text <> n0_text OR pg_column_size(n0) <> pg_column_size(n0_text::numeric) OR
            n2::text <> n2_text OR pg_column_size(n2) <> pg_column_size(n2_text::numeric) OR
            n9::text <> n9_text OR pg_column_size(n9) <> pg_column_size(n9_text::numeric) OR
            n38::text <> n38_text OR pg_column_size(n38) <> pg_column_size(n38_text::numeric) OR
            n0 IS NULL OR n2 IS NULL OR n9 IS NULL OR n38 IS NULL",
    );
    assert_eq!(mismatched, Vec::<Vec<Option<String>>>::new());
    let row = pg
        .query_one(
            "SELECT count(*), sum(n2)::text = (SELECT sum(n2_text::numeric)::text FROM nums) FROM nums",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3000);
    assert!(row.get::<_, bool>(1));
}

// Goal: the other Arrow layouts read exactly: LargeUtf8 and Utf8View text, uuid from
// FixedSizeBinary(16), time in microseconds, embeddings (FixedSizeList<Float32>) and lists into
// arrays with NULL elements and empty lists, varchar(n)/char(n) lengths, and 10 MB strings.
#[test]
fn arrow_layouts_uuid_arrays_and_long_strings() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.base (id BIGINT, s VARCHAR)");
    env.kalam_sql("INSERT INTO app.base VALUES (1, 'short'), (2, NULL), (3, 'ab  ')");
    env.kalam_sql(
        "CREATE VIEW app.layouts AS SELECT id,
            arrow_cast(s, 'LargeUtf8') AS large_s,
            arrow_cast(s, 'Utf8View') AS view_s,
            CASE WHEN id = 2 THEN NULL ELSE arrow_cast(X'00112233445566778899aabbccddeeff', 'FixedSizeBinary(16)') END AS u,
            arrow_cast('12:34:56.789012', 'Time64(Microsecond)') AS tm,
            CASE WHEN id = 2 THEN NULL ELSE arrow_cast(make_array(1.5, -0.0, CAST(id AS DOUBLE)), 'FixedSizeList(3 x Float32)') END AS emb,
            CASE WHEN id = 1 THEN make_array(1, NULL, 3) WHEN id = 2 THEN NULL ELSE arrow_cast(make_array(), 'List(Int64)') END AS ints,
            make_array(true, NULL, false) AS flags
         FROM app.base",
    );
    env.kalam_sql("CREATE VIEW app.big AS SELECT id, repeat('é', 5000000) AS s FROM app.base WHERE id = 1");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.layouts (id bigint, large_s text, view_s varchar(5), u uuid, tm time,
             emb real[], ints bigint[], flags boolean[]) SERVER kalam_server;
         CREATE FOREIGN TABLE app.padded (id bigint, view_s char(6)) SERVER kalam_server OPTIONS (table 'layouts');
         CREATE FOREIGN TABLE app.narrow (id bigint, large_s varchar(3)) SERVER kalam_server OPTIONS (table 'layouts');
         CREATE FOREIGN TABLE app.big (id bigint, s text) SERVER kalam_server;",
    )
    .unwrap();
    let got = texts(
        &mut pg,
        "SELECT large_s, view_s, u::text, tm::text, emb::text, ints::text, flags::text FROM app.layouts ORDER BY id",
    );
    let expected = vec![
        row(&[
            Some("short"),
            Some("short"),
            Some("00112233-4455-6677-8899-aabbccddeeff"),
            Some("12:34:56.789012"),
            Some("{1.5,-0,1}"),
            Some("{1,NULL,3}"),
            Some("{t,NULL,f}"),
        ]),
        row(&[None, None, None, Some("12:34:56.789012"), None, None, Some("{t,NULL,f}")]),
        // A value longer than varchar(5) only by trailing spaces is cut, as PostgreSQL's input does.
        row(&[
            Some("ab  "),
            Some("ab  "),
            Some("00112233-4455-6677-8899-aabbccddeeff"),
            Some("12:34:56.789012"),
            Some("{1.5,-0,3}"),
            Some("{}"),
            Some("{t,NULL,f}"),
        ]),
    ];
    assert_eq!(got, expected);
    // Arrays and uuids equal PostgreSQL's parse of their text, byte for byte.
    let mismatches: i64 = pg
        .query_one(
            "SELECT count(*) FROM app.layouts WHERE emb::text::real[] IS DISTINCT FROM emb
                OR pg_column_size(ints) <> pg_column_size(ints::text::bigint[])
                OR pg_column_size(flags) <> pg_column_size(flags::text::boolean[])
                OR u::text::uuid IS DISTINCT FROM u OR array_length(emb, 1) <> 3",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mismatches, 0);
    // char(n) pads like bpchar input.
    let padded =
        texts(&mut pg, "SELECT view_s || '|', octet_length(view_s)::text FROM app.padded WHERE id = 1");
    assert_eq!(padded, vec![row(&[Some("short|"), Some("6")])]);
    let raw: String =
        pg.query_one("SELECT view_s::bytea::text FROM app.padded WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(raw, "\\x73686f727420"); // 'short ' padded to 6
    expect_pg_error(
        pg.query("SELECT large_s FROM app.narrow", &[]),
        &["value too long for type character varying(3) in column \"large_s\""],
    );
    // 10 MB of two-byte characters in one value.
    let row = pg
        .query_one("SELECT length(s), octet_length(s), md5(s) = md5(repeat('é', 5000000)) FROM app.big", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, i32>(1), row.get::<_, bool>(2)),
        (5_000_000, 10_000_000, true)
    );
}

// Goal: remote values or types that do not fit are errors naming the column: malformed JSON
// into jsonb, a decimal wider than the declared numeric, and a list of the wrong element type.
#[test]
fn values_and_types_that_do_not_fit_are_errors() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.bad (id BIGINT, doc VARCHAR, n DECIMAL(20, 4))");
    env.kalam_sql("INSERT INTO app.bad VALUES (1, '{\"ok\": true}', 1.5), (2, '{not json', 2.25)");
    env.kalam_sql("CREATE VIEW app.lists AS SELECT id, make_array('a', 'b') AS tags FROM app.bad");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.bad (id bigint, doc jsonb, n numeric(10, 2)) SERVER kalam_server;
         CREATE FOREIGN TABLE app.lists (id bigint, tags real[]) SERVER kalam_server;",
    )
    .unwrap();
    let e =
        expect_pg_error(pg.query("SELECT doc FROM app.bad", &[]), &["column \"doc\" holds malformed JSON"]);
    assert_eq!(e.code, "22P02", "{e:?}");
    let e = expect_pg_error(
        pg.query("SELECT n FROM app.bad", &[]),
        &["column \"n\" has type numeric(10,2) but the KalamDB server sends Decimal128(20, 4)"],
    );
    assert!(e.detail.unwrap_or_default().contains("do not all fit"));
    expect_pg_error(pg.query("SELECT tags FROM app.lists", &[]), &["column \"tags\" has type real[]"]);
    let one: i64 = pg.query_one("SELECT id FROM app.bad WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

// Goal: text and bytea read exactly at every size of PostgreSQL's value header (1 byte up to
// 126 bytes of content, 4 bytes above) from every Arrow string and binary layout, char(n)
// padding crossing that boundary, with NULLs between the values.
#[test]
fn strings_at_every_header_size_and_layout() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.lens (n BIGINT)");
    env.kalam_sql("INSERT INTO app.lens VALUES (0), (1), (7), (8), (12), (13), (64), (65), (125), (126), (127), (128), (1000), (NULL)");
    env.kalam_sql(
        "CREATE VIEW app.strs AS SELECT n,
            repeat('x', CAST(n AS INT)) AS s,
            arrow_cast(repeat('y', CAST(n AS INT)), 'LargeUtf8') AS large_s,
            arrow_cast(repeat('z', CAST(n AS INT)), 'Utf8View') AS view_s,
            arrow_cast(repeat('b', CAST(n AS INT)), 'Binary') AS b,
            arrow_cast(repeat('c', CAST(n AS INT)), 'BinaryView') AS view_b
         FROM app.lens",
    );
    env.kalam_sql("CREATE VIEW app.short_strs AS SELECT n, s FROM app.strs WHERE n <= 128");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.strs (n bigint, s text, large_s varchar(1000), view_s text, b bytea, view_b bytea)
             SERVER kalam_server;
         CREATE FOREIGN TABLE app.chars (n bigint, s char(130)) SERVER kalam_server OPTIONS (table 'short_strs');
         CREATE FOREIGN TABLE app.all_chars (n bigint, s char(130)) SERVER kalam_server OPTIONS (table 'strs');",
    )
    .unwrap();
    let checked: Vec<(i64, i64)> = pg
        .query(
            "SELECT count(*), count(*) FILTER (WHERE
                 s IS NOT DISTINCT FROM repeat('x', n::int) AND large_s IS NOT DISTINCT FROM repeat('y', n::int)
                 AND view_s IS NOT DISTINCT FROM repeat('z', n::int)
                 AND b IS NOT DISTINCT FROM convert_to(repeat('b', n::int), 'UTF8')
                 AND view_b IS NOT DISTINCT FROM convert_to(repeat('c', n::int), 'UTF8')
                 AND octet_length(view_s) IS NOT DISTINCT FROM n::int
                 AND (n IS NULL) = (s IS NULL) AND (n IS NULL) = (view_b IS NULL))
             FROM app.strs",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(checked, [(14, 14)]);
    // char(130): padded with spaces to 130 characters below, cut (spaces only) or kept above.
    let got = texts(
        &mut pg,
        "SELECT n::text, octet_length(s)::text, (s::text = repeat('x', n::int))::text FROM app.chars
         WHERE n IN (0, 126, 128) ORDER BY n",
    );
    let expected = vec![
        row(&[Some("0"), Some("130"), Some("true")]),
        row(&[Some("126"), Some("130"), Some("true")]),
        row(&[Some("128"), Some("130"), Some("true")]),
    ];
    assert_eq!(got, expected);
    expect_pg_error(
        pg.query("SELECT s FROM app.all_chars", &[]),
        &["value too long for type character(130) in column \"s\""],
    );
}
