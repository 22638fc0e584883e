//! Versions and upgrades: the version the workspace declares is the one every artifact carries,
//! and each released version's install script, updated with `ALTER EXTENSION pg_kalam UPDATE`,
//! gives the catalog of a fresh install (see sql/README.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kalam_e2e::{TestEnv, expect_pg_error, extension_dir, package_dir, query_text};

/// The checkout's root (the workspace, whose `Cargo.toml` declares the version).
fn repo_root() -> PathBuf {
    PathBuf::from(package_dir()).parent().expect("tests/ has a parent").to_path_buf()
}

/// `[workspace.package] version` of the root `Cargo.toml`.
fn workspace_version() -> String {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("read Cargo.toml");
    let section = manifest.split("[workspace.package]").nth(1).expect("Cargo.toml has [workspace.package]");
    let line =
        section.lines().find(|l| l.starts_with("version = ")).expect("[workspace.package] has a version");
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}

/// A version's numbers, to order versions.
fn numbers(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("version {version:?} is not numeric")))
        .collect()
}

/// The scripts of sql/: released versions (their install scripts) and upgrades (from, to).
struct SqlScripts {
    released: Vec<String>,
    upgrades: Vec<(String, String)>,
}

fn sql_scripts() -> SqlScripts {
    let mut scripts = SqlScripts { released: Vec::new(), upgrades: Vec::new() };
    for entry in std::fs::read_dir(repo_root().join("sql")).expect("read sql/") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(versions) = name.strip_prefix("pg_kalam--").and_then(|n| n.strip_suffix(".sql")) else {
            continue;
        };
        match versions.split_once("--") {
            Some((from, to)) => scripts.upgrades.push((from.to_string(), to.to_string())),
            None => scripts.released.push(versions.to_string()),
        }
    }
    scripts.released.sort_by_key(|v| numbers(v));
    scripts
}

/// Every object of the database's pg_kalam with what defines it (function definitions and
/// grants, the wrapper's handler, validator and options, the access method, the event
/// triggers and their tags, comments), one sorted line each, headed by the extension itself.
fn extension_catalog(pg: &mut postgres::Client) -> Vec<String> {
    let mut lines = query_text(
        pg,
        "SELECT format('extension version=%s relocatable=%s schema=%s config=%s',
                       extversion, extrelocatable, extnamespace::regnamespace, extconfig)
         FROM pg_extension WHERE extname = 'pg_kalam'",
    )
    .unwrap();
    lines.extend(
        query_text(
            pg,
            "SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' | ' || coalesce(
                 CASE d.classid
                 WHEN 'pg_proc'::regclass THEN
                     (SELECT pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '-')
                      FROM pg_proc p WHERE p.oid = d.objid)
                 WHEN 'pg_foreign_data_wrapper'::regclass THEN
                     (SELECT format('handler=%s validator=%s options=%s acl=%s', w.fdwhandler::regproc,
                                    w.fdwvalidator::regproc, w.fdwoptions, w.fdwacl)
                      FROM pg_foreign_data_wrapper w WHERE w.oid = d.objid)
                 WHEN 'pg_am'::regclass THEN
                     (SELECT format('type=%s handler=%s', a.amtype, a.amhandler::regproc)
                      FROM pg_am a WHERE a.oid = d.objid)
                 WHEN 'pg_event_trigger'::regclass THEN
                     (SELECT format('event=%s function=%s tags=%s enabled=%s', e.evtevent,
                                    e.evtfoid::regproc, e.evttags, e.evtenabled)
                      FROM pg_event_trigger e WHERE e.oid = d.objid)
                 END, 'a member of an unexpected kind')
                 || ' | comment=' || coalesce(obj_description(d.objid, d.classid::regclass::text), '-')
             FROM pg_depend d JOIN pg_extension x ON d.refobjid = x.oid
             WHERE d.refclassid = 'pg_extension'::regclass AND x.extname = 'pg_kalam' AND d.deptype = 'e'
             ORDER BY 1",
        )
        .unwrap(),
    );
    lines
}

// Goal: Cargo.toml, the control file, the install and upgrade scripts' names, kalam_version()
// and the server all carry one version, and every released version has a path to it.
#[test]
fn versions_agree_across_cargo_control_scripts_and_binaries() {
    let version = workspace_version();
    assert_eq!(env!("CARGO_PKG_VERSION"), version, "kalam-e2e inherits the workspace version");

    // The control file in the repository follows Cargo; the installed one carries the version.
    let control = std::fs::read_to_string(repo_root().join("pg_kalam.control")).unwrap();
    assert!(control.contains("default_version = '@CARGO_VERSION@'"), "{control}");
    let installed = std::fs::read_to_string(extension_dir().join("pg_kalam.control")).unwrap();
    assert!(
        installed.contains(&format!("default_version = '{version}'")),
        "installed control file:\n{installed}"
    );
    assert!(
        extension_dir().join(format!("pg_kalam--{version}.sql")).exists(),
        "no install script for {version}"
    );

    // sql/: released versions are older than this one, upgrades join known versions, and each
    // released version reaches this one; every script is installed as it is in sql/.
    let scripts = sql_scripts();
    assert!(!scripts.released.is_empty(), "sql/ keeps the install script of each released version");
    let known: Vec<&String> = scripts.released.iter().chain([&version]).collect();
    for released in &scripts.released {
        assert!(
            numbers(released) < numbers(&version),
            "sql/pg_kalam--{released}.sql is not older than {version}"
        );
    }
    let mut next: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in &scripts.upgrades {
        assert!(
            known.contains(&from) && known.contains(&to),
            "upgrade {from} -> {to} joins an unknown version"
        );
        assert!(numbers(from) < numbers(to), "upgrade {from} -> {to} goes backwards");
        assert!(next.insert(from, to).is_none(), "two upgrades from {from}");
    }
    for released in &scripts.released {
        let mut at = released.as_str();
        while at != version {
            at = next
                .get(at)
                .unwrap_or_else(|| panic!("no upgrade path from {released} to {version} (stuck at {at})"));
        }
    }
    for entry in std::fs::read_dir(repo_root().join("sql")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("pg_kalam--") {
            let ours = std::fs::read(entry.path()).unwrap();
            let theirs = std::fs::read(extension_dir().join(&name)).unwrap_or_default();
            assert!(ours == theirs, "{name} is not installed as it is in sql/ (run scripts/test.sh)");
        }
    }

    // What PostgreSQL and the binaries report.
    let env = TestEnv::start();
    let mut pg = env.pg();
    let available = query_text(
        &mut pg,
        "SELECT string_agg(version, ',' ORDER BY string_to_array(version, '.')::int[])
         FROM pg_available_extension_versions WHERE name = 'pg_kalam'",
    )
    .unwrap();
    let expected: Vec<&str> = known.iter().map(|v| v.as_str()).collect();
    assert_eq!(available, vec![expected.join(",")]);
    pg.batch_execute("CREATE EXTENSION pg_kalam").unwrap();
    assert_eq!(
        query_text(
            &mut pg,
            "SELECT extversion, kalam_version() FROM pg_extension WHERE extname = 'pg_kalam'"
        )
        .unwrap(),
        vec![format!("{version}|pg_kalam {version}")]
    );
    assert_eq!(env.kalam.healthcheck()["version"], version.as_str());
}

// Goal: a database created with each released version and updated with ALTER EXTENSION has
// exactly the objects of a fresh install, and works: the wrapper validates options and a
// foreign table reads through it.
#[test]
fn alter_extension_update_from_each_release_matches_a_fresh_install() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.t (id BIGINT, name VARCHAR)");
    env.kalam_sql("INSERT INTO app.t VALUES (1, 'one'), (2, 'two')");

    let mut admin = env.pg();
    admin.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut fresh = env.pg.connect_to("fresh");
    fresh.batch_execute("CREATE EXTENSION pg_kalam").unwrap();
    let expected = extension_catalog(&mut fresh);
    assert!(expected[0].starts_with(&format!("extension version={} ", workspace_version())), "{expected:?}");
    assert!(
        expected.len() > 10,
        "a fresh install has functions, the wrapper, the access method, triggers: {expected:?}"
    );
    let unknown: Vec<&String> =
        expected.iter().filter(|l| l.contains("a member of an unexpected kind")).collect();
    assert!(unknown.is_empty(), "extension_catalog() does not describe these members yet: {unknown:?}");

    for released in sql_scripts().released {
        let db = format!("from_{}", released.replace('.', "_"));
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        let mut pg = env.pg.connect_to(&db);
        pg.batch_execute(&format!("CREATE EXTENSION pg_kalam VERSION '{released}'")).unwrap();
        assert_eq!(
            query_text(&mut pg, "SELECT extversion FROM pg_extension WHERE extname = 'pg_kalam'").unwrap(),
            vec![released.clone()]
        );
        pg.batch_execute("ALTER EXTENSION pg_kalam UPDATE").unwrap();
        let updated = extension_catalog(&mut pg);
        for (fresh_line, updated_line) in expected.iter().zip(&updated) {
            assert_eq!(updated_line, fresh_line, "{released} updated differs from a fresh install");
        }
        assert_eq!(updated.len(), expected.len(), "{released} updated: {updated:#?}\nfresh: {expected:#?}");

        expect_pg_error(
            pg.batch_execute(
                "CREATE SERVER bad FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port 'x')",
            ),
            &["port"],
        );
        pg.batch_execute(&format!(
            "CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{}');
             CREATE SCHEMA app;
             CREATE FOREIGN TABLE app.t (id bigint, name text) SERVER kalam_server",
            env.kalam.flight_port
        ))
        .unwrap();
        assert_eq!(
            query_text(&mut pg, "SELECT id, name, kalam_version() FROM app.t ORDER BY id").unwrap(),
            vec![
                format!("1|one|pg_kalam {}", workspace_version()),
                format!("2|two|pg_kalam {}", workspace_version())
            ]
        );
    }
}
