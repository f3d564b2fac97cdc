//! The PostgreSQL connectors against a real server: each test starts its
//! own (initdb in a temp dir, a free 127.0.0.1 port; as the `postgres`
//! user when run as root, since initdb refuses root) and stops it by the
//! PID it started. The tasks are driven directly, as the worker would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_connect::connector::{Connector, OffsetReader, Props, SinkTask, SourceTask};
use weir_connect::connectors::postgres::{sink, source};
use weir_connect::data::{Schema, SchemaAndValue, SchemaType, Struct, Value};
use weir_connect::record::{ConnectRecord, SinkRecord, SourceRecord};
use weir_connect::store::offsets::JsonMap;

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().expect(
        "PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql (scripts/test.sh does)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as an unprivileged user when we are root (setpriv execs,
/// so the PID is the server's own).
fn command(bin: &Path, user: Option<&str>) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--init-groups",
                "--",
            ])
            .arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

impl Server {
    fn start() -> Server {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let user = if is_root() {
            let u = if Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                "postgres"
            } else {
                "nobody"
            };
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the temp dir to {u}");
            Some(u)
        } else {
            None
        };
        let data = dir.path().join("data");
        let out = command(&bin.join("initdb"), user)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = command(&bin.join("postgres"), user)
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn client(&self) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    return client;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the server did not answer: {e}"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn props(kv: &[(&str, &str)]) -> Props {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Offsets as the framework would keep them: the last of each partition.
#[derive(Default, Clone)]
struct Offsets(Arc<Mutex<BTreeMap<String, JsonMap>>>);

impl Offsets {
    fn commit(&self, records: &[SourceRecord]) {
        let mut m = self.0.lock().unwrap();
        for r in records {
            m.insert(
                serde_json::to_string(&r.source_partition).unwrap(),
                r.source_offset.clone(),
            );
        }
    }
}

impl OffsetReader for Offsets {
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap> {
        self.0
            .lock()
            .unwrap()
            .get(&serde_json::to_string(partition).unwrap())
            .cloned()
    }
}

fn source_task(config: &Props, offsets: &Offsets) -> source::PostgresSourceTask {
    let mut t = source::PostgresSourceTask::default();
    t.start(config, offsets).unwrap();
    t
}

/// Polls until `n` records came (or 20 s pass).
async fn poll_n(
    t: &mut source::PostgresSourceTask,
    n: usize,
    offsets: &Offsets,
) -> Vec<SourceRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let batch = t.poll().await.unwrap();
        offsets.commit(&batch);
        out.extend(batch);
    }
    out
}

/// A quiet spell: nothing more within `ms`.
async fn poll_quiet(t: &mut source::PostgresSourceTask, ms: u64) -> Vec<SourceRecord> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        out.extend(t.poll().await.unwrap());
    }
    out
}

fn field(r: &SourceRecord, name: &str) -> Value {
    match &r.record.value {
        Value::Struct(s) => s
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no field {name}")),
        v => panic!("not a struct: {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_modes_offsets_and_tasks() {
    let server = Server::start();
    let db = server.client().await;
    db.batch_execute(
        "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2), \
           small INT2, big INT8, f4 REAL, f8 FLOAT8, ok BOOL, raw BYTEA, day DATE, at_time TIME, \
           at TIMESTAMP, at_tz TIMESTAMPTZ, doc JSONB, uid UUID, \
           updated TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC') - interval '1 second');
         INSERT INTO items (name, price, small, big, f4, f8, ok, raw, day, at_time, at, at_tz, doc, uid)
           VALUES ('a', 12.34, 7, 9000000000, 1.5, 2.25, true, '\\x01ff', '2024-01-02', '01:02:03.5',
                   '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+02', '{\"k\": 1}',
                   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
                  ('b', -0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY);
         CREATE TABLE t3 (id INT PRIMARY KEY); INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (1), (2);",
    )
    .await
    .unwrap();
    let url = server.url();

    // incrementing: both rows, typed, then only the new one.
    let config = props(&[
        ("connection.url", &url),
        ("table.whitelist", "items"),
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("topic.prefix", "pg-"),
        ("poll.interval.ms", "100"),
    ]);
    let offsets = Offsets::default();
    let mut t = source_task(&config, &offsets);
    let rows = poll_n(&mut t, 2, &offsets).await;
    assert_eq!(rows.len(), 2);
    let a = &rows[0];
    assert_eq!(a.record.topic, "pg-items");
    assert_eq!(a.record.key, Value::Null);
    assert_eq!(a.source_partition["table"], "items");
    assert_eq!(a.source_offset["incrementing"], 1);
    let schema = a.record.value_schema.as_ref().unwrap();
    assert_eq!(schema.name.as_deref(), Some("items"));
    assert!(!schema.field("name").unwrap().schema.optional);
    assert!(schema.field("price").unwrap().schema.optional);
    let price = &schema.field("price").unwrap().schema;
    assert_eq!(
        price.name.as_deref(),
        Some("org.apache.kafka.connect.data.Decimal")
    );
    assert_eq!(price.parameters["scale"], "2");
    assert_eq!(field(a, "id"), Value::Int32(1));
    assert_eq!(field(a, "name"), Value::String("a".into()));
    assert_eq!(
        field(a, "price"),
        Value::Bytes(vec![0x04, 0xd2]),
        "1234 unscaled"
    );
    assert_eq!(
        field(&rows[1], "price"),
        Value::Bytes(vec![0xce]),
        "-50 unscaled"
    );
    assert_eq!(field(a, "small"), Value::Int16(7));
    assert_eq!(field(a, "big"), Value::Int64(9_000_000_000));
    assert_eq!(field(a, "f4"), Value::Float32(1.5));
    assert_eq!(field(a, "f8"), Value::Float64(2.25));
    assert_eq!(field(a, "ok"), Value::Boolean(true));
    assert_eq!(field(a, "raw"), Value::Bytes(vec![1, 0xff]));
    assert_eq!(field(a, "day"), Value::Int32(19_724));
    assert_eq!(field(a, "at_time"), Value::Int32(3_723_500));
    assert_eq!(field(a, "at"), Value::Int64(1_704_164_645_678));
    assert_eq!(field(a, "at_tz"), Value::Int64(1_704_157_445_000));
    assert_eq!(field(a, "doc"), Value::String("{\"k\": 1}".into()));
    assert_eq!(
        field(a, "uid"),
        Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
    );
    assert_eq!(field(&rows[1], "small"), Value::Null);
    assert!(poll_quiet(&mut t, 300).await.is_empty());
    db.batch_execute("INSERT INTO items (name) VALUES ('c')")
        .await
        .unwrap();
    let new = poll_n(&mut t, 1, &offsets).await;
    assert_eq!(new.len(), 1);
    assert_eq!(field(&new[0], "name"), Value::String("c".into()));

    // Resume: a new task from the stored offset reads only what is newer.
    db.batch_execute("INSERT INTO items (name) VALUES ('d')")
        .await
        .unwrap();
    let mut resumed = source_task(&config, &offsets);
    let after = poll_n(&mut resumed, 1, &offsets).await;
    assert_eq!(after.len(), 1, "only the row after the offset");
    assert_eq!(field(&after[0], "name"), Value::String("d".into()));
    assert!(poll_quiet(&mut resumed, 300).await.is_empty());

    // timestamp+incrementing: an update moves the row's timestamp on.
    let ts_offsets = Offsets::default();
    let mut ts = source_task(
        &props(&[
            ("connection.url", &url),
            ("table.include.list", "items"),
            ("mode", "timestamp+incrementing"),
            ("incrementing.column.name", "id"),
            ("timestamp.column.name", "updated"),
            ("topic.prefix", ""),
            ("poll.interval.ms", "100"),
            ("batch.max.rows", "3"),
        ]),
        &ts_offsets,
    );
    let all = poll_n(&mut ts, 4, &ts_offsets).await;
    assert_eq!(all.len(), 4);
    assert!(all[0].source_offset.contains_key("timestamp_nanos"));
    assert!(poll_quiet(&mut ts, 300).await.is_empty());
    db.batch_execute(
        "UPDATE items SET name = 'b2', updated = (now() AT TIME ZONE 'UTC') WHERE name = 'b'",
    )
    .await
    .unwrap();
    let changed = poll_n(&mut ts, 1, &ts_offsets).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(field(&changed[0], "name"), Value::String("b2".into()));
    assert_eq!(changed[0].record.topic, "items");

    // bulk: the whole table every poll.
    let mut bulk = source_task(
        &props(&[
            ("connection.url", &url),
            ("table.whitelist", "t2"),
            ("mode", "bulk"),
            ("topic.prefix", "b."),
            ("poll.interval.ms", "100"),
        ]),
        &Offsets::default(),
    );
    let twice = poll_n(&mut bulk, 4, &Offsets::default()).await;
    assert_eq!(twice.len(), 4);
    assert_eq!(twice[2].record.topic, "b.t2");

    // The table list split across tasks; each task reads only its own.
    let mut conn = source::PostgresSource::default();
    let split = props(&[
        ("connection.url", &url),
        ("table.whitelist", "t1,t2,t3"),
        ("mode", "bulk"),
        ("topic.prefix", "s-"),
        ("poll.interval.ms", "100000"),
    ]);
    conn.start(&split).unwrap();
    let tasks = conn.task_configs(2);
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["tables"], "t1,t2");
    assert_eq!(tasks[1]["tables"], "t3");
    assert_eq!(conn.task_configs(5).len(), 3, "one task per table at most");
    let mut first = source_task(&tasks[0], &Offsets::default());
    let got = poll_n(&mut first, 3, &Offsets::default()).await;
    let mut topics: Vec<_> = got.iter().map(|r| r.record.topic.clone()).collect();
    topics.sort();
    assert_eq!(topics, ["s-t1", "s-t2", "s-t2"]);

    // A query instead of tables.
    let mut q = source_task(
        &props(&[
            ("connection.url", &url),
            ("query", "SELECT id, name FROM items WHERE name <> 'a'"),
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("topic.prefix", "q"),
        ]),
        &Offsets::default(),
    );
    let rows = poll_n(&mut q, 3, &Offsets::default()).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].record.topic, "q");
    assert_eq!(
        rows[0].source_partition["query"],
        "SELECT id, name FROM items WHERE name <> 'a'"
    );

    // A column the mode names that the table lacks.
    let mut bad = source_task(
        &props(&[
            ("connection.url", &url),
            ("table.whitelist", "t1"),
            ("mode", "incrementing"),
            ("incrementing.column.name", "nope"),
            ("topic.prefix", "x"),
        ]),
        &Offsets::default(),
    );
    let e = bad.poll().await.unwrap_err();
    assert!(
        e.contains("nope") && e.contains("incrementing.column.name"),
        "{e}"
    );
}

fn key_schema() -> Arc<Schema> {
    Arc::new(Schema::structure([(
        "id".to_string(),
        Schema::of(SchemaType::Int32),
    )]))
}

fn value_schema(extra: bool) -> Arc<Schema> {
    let mut fields = vec![
        ("id".to_string(), Schema::of(SchemaType::Int32)),
        (
            "name".to_string(),
            Schema::of(SchemaType::String).optional(),
        ),
        ("price".to_string(), {
            let mut s = Schema::of(SchemaType::Bytes)
                .named("org.apache.kafka.connect.data.Decimal")
                .optional();
            s.parameters.insert("scale".into(), "2".into());
            s
        }),
        (
            "at".to_string(),
            Schema::of(SchemaType::Int64)
                .named("org.apache.kafka.connect.data.Timestamp")
                .optional(),
        ),
    ];
    if extra {
        fields.push((
            "note".to_string(),
            Schema::of(SchemaType::String).optional(),
        ));
    }
    Arc::new(Schema::structure(fields))
}

fn record(topic: &str, id: i32, name: Option<&str>, note: Option<&str>, offset: i64) -> SinkRecord {
    let mut key = Struct::new(key_schema());
    key.put("id", Value::Int32(id));
    let value = name.map(|n| {
        let schema = value_schema(note.is_some());
        let mut v = Struct::new(schema.clone());
        v.put("id", Value::Int32(id));
        v.put("name", Value::String(n.to_string()));
        v.put("price", Value::Bytes(vec![0x04, 0xd2]));
        v.put("at", Value::Int64(1_704_067_200_123));
        if let Some(note) = note {
            v.put("note", Value::String(note.to_string()));
        }
        SchemaAndValue {
            schema: Some(schema),
            value: Value::Struct(v),
        }
    });
    let mut r = ConnectRecord::new(topic, value.unwrap_or_else(SchemaAndValue::null)).with_key(
        SchemaAndValue {
            schema: Some(key_schema()),
            value: Value::Struct(key),
        },
    );
    r.kafka_partition = Some(0);
    SinkRecord {
        record: r,
        kafka_offset: offset,
    }
}

async fn rows(db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_inserts_upserts_deletes_creates_and_evolves() {
    let server = Server::start();
    let db = server.client().await;
    let url = server.url();

    // auto.create + upsert by the record key, delete on tombstones.
    let config = props(&[
        ("connection.url", &url),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("delete.enabled", "true"),
        ("auto.create", "true"),
        ("auto.evolve", "true"),
        ("table.name.format", "out_${topic}"),
    ]);
    let mut conn = sink::PostgresSink::default();
    conn.start(&config).unwrap();
    let mut t = sink::PostgresSinkTask::default();
    t.start(&config).unwrap();
    t.put(vec![
        record("orders", 1, Some("one"), None, 0),
        record("orders", 2, Some("two"), None, 1),
        record("orders", 1, Some("uno"), None, 2),
    ])
    .await
    .unwrap();
    t.flush().await.unwrap();
    assert_eq!(
        rows(
            &db,
            "SELECT id || ':' || name || ':' || price || ':' || at FROM out_orders ORDER BY id"
        )
        .await,
        [
            "1:uno:12.34:2024-01-01 00:00:00.123",
            "2:two:12.34:2024-01-01 00:00:00.123"
        ]
    );
    let pk = rows(
        &db,
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
         AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'out_orders'::regclass AND i.indisprimary",
    )
    .await;
    assert_eq!(pk, ["id"]);
    // A tombstone deletes; a new optional field adds a column.
    t.put(vec![
        record("orders", 2, None, None, 3),
        record("orders", 3, Some("three"), Some("new"), 4),
    ])
    .await
    .unwrap();
    assert_eq!(
        rows(
            &db,
            "SELECT id || ':' || coalesce(note, '-') FROM out_orders ORDER BY id"
        )
        .await,
        ["1:-", "3:new"]
    );

    // Plain inserts into an existing table; a duplicate fails the whole put
    // (one transaction) with the database's reason.
    db.batch_execute(
        "CREATE TABLE plain (id INT PRIMARY KEY, name TEXT, price NUMERIC(8,2), at TIMESTAMPTZ)",
    )
    .await
    .unwrap();
    let config = props(&[("connection.url", &url), ("table.name.format", "plain")]);
    let mut ins = sink::PostgresSinkTask::default();
    ins.start(&config).unwrap();
    ins.put(vec![record("x", 1, Some("a"), None, 0)])
        .await
        .unwrap();
    let e = ins
        .put(vec![
            record("x", 2, Some("b"), None, 1),
            record("x", 1, Some("again"), None, 2),
        ])
        .await
        .unwrap_err();
    assert!(e.contains("duplicate key") && e.contains("offset 2"), "{e}");
    assert_eq!(
        rows(&db, "SELECT id::text FROM plain ORDER BY id").await,
        ["1"]
    );
    // A field the table lacks, without auto.evolve.
    let e = ins
        .put(vec![record("x", 5, Some("e"), Some("n"), 3)])
        .await
        .unwrap_err();
    assert!(e.contains("note") && e.contains("auto.evolve"), "{e}");
    // A missing table without auto.create.
    let mut none = sink::PostgresSinkTask::default();
    none.start(&props(&[("connection.url", &url)])).unwrap();
    let e = none
        .put(vec![record("missing", 1, Some("a"), None, 0)])
        .await
        .unwrap_err();
    assert!(
        e.contains("\"missing\" is missing and auto.create is disabled"),
        "{e}"
    );

    // Schemaless maps go into an existing table; auto.create needs a schema.
    let map = |id: i64| SinkRecord {
        record: ConnectRecord::new(
            "plain",
            SchemaAndValue::schemaless(Value::Map(vec![
                (Value::String("id".into()), Value::Int64(id)),
                (Value::String("name".into()), Value::String("m".into())),
            ])),
        ),
        kafka_offset: 0,
    };
    let mut upsert_value = sink::PostgresSinkTask::default();
    upsert_value
        .start(&props(&[
            ("connection.url", &url),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
            ("auto.create", "true"),
        ]))
        .unwrap();
    upsert_value.put(vec![map(7), map(7)]).await.unwrap();
    assert_eq!(
        rows(&db, "SELECT id || name FROM plain WHERE id = 7").await,
        ["7m"]
    );
    let mut fresh = map(1);
    fresh.record.topic = "fresh".into();
    let e = upsert_value.put(vec![fresh]).await.unwrap_err();
    assert!(e.contains("auto.create") && e.contains("no schema"), "{e}");
}

#[test]
fn config_errors_name_the_key() {
    let mut s = source::PostgresSource::default();
    let e = s
        .start(&props(&[
            ("connection.url", "postgresql://u@localhost/db"),
            ("table.whitelist", "t"),
            ("mode", "incrementing"),
            ("topic.prefix", "p"),
        ]))
        .unwrap_err();
    assert!(e.contains("incrementing.column.name"), "{e}");
    let e = s
        .start(&props(&[
            ("connection.url", "postgresql://u@localhost/db"),
            ("mode", "bulk"),
            ("topic.prefix", "p"),
        ]))
        .unwrap_err();
    assert!(e.contains("table.whitelist"), "{e}");
    let e = s
        .start(&props(&[
            ("connection.url", "postgresql://u@localhost/db"),
            ("table.whitelist", "t"),
            ("mode", "sometimes"),
            ("topic.prefix", "p"),
        ]))
        .unwrap_err();
    assert!(e.contains("mode"), "{e}");
    let mut k = sink::PostgresSink::default();
    let e = k
        .start(&props(&[
            ("connection.url", "postgresql://u@localhost/db"),
            ("delete.enabled", "true"),
            ("pk.mode", "record_value"),
        ]))
        .unwrap_err();
    assert!(
        e.contains("delete.enabled") && e.contains("pk.mode=record_key"),
        "{e}"
    );
    let e = k
        .start(&props(&[
            ("connection.url", "postgresql://u@localhost/db"),
            ("insert.mode", "upsert"),
        ]))
        .unwrap_err();
    assert!(e.contains("pk.mode"), "{e}");
}
