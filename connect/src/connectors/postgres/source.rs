//! `weir.postgres.source`: Confluent's JDBC source, query based. Each task
//! polls its tables (or the one `query`) every `poll.interval.ms`; by
//! `mode` it reads the whole table (bulk), rows past the last
//! `incrementing.column.name` value, rows past the last
//! `timestamp.column.name` value, or both (an update moves a row's
//! timestamp on, so it is read again). The source partition is
//! `{"table"}` (or `{"query"}`), the offset `{"incrementing"}` and/or
//! `{"timestamp_nanos"}`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::values::{self, Read};
use super::{connect, connection_def, db_error, pg_config, quote, quote_table, start_checked};
use crate::config_def::{ConfigDef, ConfigType, Importance, Validator};
use crate::connector::{BoxFuture, Connector, OffsetReader, Props, SourceTask, TaskError};
use crate::data::{Schema, SchemaAndValue, Struct, Value};
use crate::record::{ConnectRecord, SourceRecord};
use crate::store::offsets::JsonMap;

/// The tables one task polls (set in task configs).
const TASK_TABLES: &str = "tables";
const MODES: [&str; 4] = [
    "bulk",
    "incrementing",
    "timestamp",
    "timestamp+incrementing",
];

pub fn def() -> ConfigDef {
    connection_def(ConfigDef::new())
        .define(
            "table.whitelist",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Tables to copy (table or schema.table), split over the tasks.",
        )
        .in_group("Database")
        .define(
            "table.include.list",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "The same as table.whitelist (its newer name).",
        )
        .in_group("Database")
        .define(
            "query",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "A query to copy instead of tables (the mode's condition wraps it); one task.",
        )
        .in_group("Database")
        .define(
            "mode",
            ConfigType::String,
            None,
            Importance::High,
            "bulk: the whole table each poll; incrementing: new rows by a strictly increasing column; timestamp: new and updated rows by a timestamp column; timestamp+incrementing: both, for rows that share a timestamp.",
        )
        .validate_with(Validator::OneOf {
            values: MODES.to_vec(),
            ignore_case: false,
        })
        .in_group("Mode")
        .define(
            "incrementing.column.name",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "The strictly increasing integer column (modes incrementing and timestamp+incrementing).",
        )
        .in_group("Mode")
        .define(
            "timestamp.column.name",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "The timestamp column that a change moves on (modes timestamp and timestamp+incrementing).",
        )
        .in_group("Mode")
        .define(
            "timestamp.delay.interval.ms",
            ConfigType::Long,
            Some("0"),
            Importance::High,
            "How long after its timestamp a row is read, so transactions that started earlier commit first.",
        )
        .validate_with(Validator::Range {
            min: Some(0.0),
            max: None,
        })
        .in_group("Mode")
        .define(
            "topic.prefix",
            ConfigType::String,
            None,
            Importance::High,
            "Topics are this prefix and the table's name; with query, the topic is the prefix itself.",
        )
        .in_group("Connector")
        .define(
            "poll.interval.ms",
            ConfigType::Int,
            Some("5000"),
            Importance::High,
            "How often to poll each table, in milliseconds.",
        )
        .validate_with(Validator::Range {
            min: Some(1.0),
            max: None,
        })
        .in_group("Connector")
        .define(
            "batch.max.rows",
            ConfigType::Int,
            Some("100"),
            Importance::Low,
            "The most rows one poll returns.",
        )
        .validate_with(Validator::Range {
            min: Some(1.0),
            max: None,
        })
        .in_group("Connector")
}

fn get<'a>(config: &'a Props, key: &str) -> &'a str {
    config.get(key).map(|v| v.trim()).unwrap_or("")
}

fn list(config: &Props, key: &str) -> Vec<String> {
    get(config, key)
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn tables(config: &Props) -> Vec<String> {
    let mut t = list(config, "table.whitelist");
    for more in list(config, "table.include.list") {
        if !t.contains(&more) {
            t.push(more);
        }
    }
    t
}

/// The checks beyond the keys' types, as (key, message).
pub fn check(config: &Props) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Err(e) = pg_config(config) {
        let key = if e.contains("connection.user") {
            "connection.user"
        } else {
            "connection.url"
        };
        if !e.starts_with("Missing required") {
            errors.push((key.to_string(), e));
        }
    }
    let has_query = !get(config, "query").is_empty();
    let tables = tables(config);
    match (has_query, tables.is_empty()) {
        (false, true) => errors.push((
            "table.whitelist".into(),
            "Set table.whitelist (or table.include.list) to the tables to copy, or query to a query".into(),
        )),
        (true, false) => errors.push((
            "query".into(),
            "query and table.whitelist/table.include.list are mutually exclusive: set one".into(),
        )),
        _ => {}
    }
    let mode = get(config, "mode");
    let needs = |key: &str, errors: &mut Vec<(String, String)>| {
        if get(config, key).is_empty() {
            errors.push((
                key.to_string(),
                format!("mode={mode} requires {key}: the column to read new rows by"),
            ));
        }
    };
    match mode {
        "incrementing" => needs("incrementing.column.name", &mut errors),
        "timestamp" => needs("timestamp.column.name", &mut errors),
        "timestamp+incrementing" => {
            needs("incrementing.column.name", &mut errors);
            needs("timestamp.column.name", &mut errors);
        }
        _ => {}
    }
    errors
}

#[derive(Default)]
pub struct PostgresSource {
    config: Props,
}

impl Connector for PostgresSource {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    fn validate_config(&self, config: &Props) -> Vec<(String, String)> {
        check(config)
    }

    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        start_checked(&def(), check(config), config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        let tables = tables(&self.config);
        if tables.is_empty() {
            return vec![self.config.clone()];
        }
        // Contiguous groups, as Kafka's ConnectorUtils.groupPartitions.
        let n = max_tasks.max(1).min(tables.len());
        let (per, extra) = (tables.len() / n, tables.len() % n);
        let mut start = 0;
        (0..n)
            .map(|i| {
                let len = per + usize::from(i < extra);
                let mut c = self.config.clone();
                c.insert(TASK_TABLES.into(), tables[start..start + len].join(","));
                start += len;
                c
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    fn incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }
    fn timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// One table (or the query) a task polls.
struct Source {
    /// `{"table": …}` or `{"query": …}`.
    partition: JsonMap,
    topic: String,
    /// The FROM clause: a quoted table or the parenthesized query.
    from: String,
    /// The schema name of the records (the table's name).
    name: String,
    /// Last offset read.
    incrementing: Option<i64>,
    timestamp_us: Option<i64>,
    next_poll: Instant,
    /// Read once, on the first poll.
    shape: Option<Shape>,
}

struct Shape {
    schema: Arc<Schema>,
    select: String,
    reads: Vec<Read>,
}

#[derive(Default)]
pub struct PostgresSourceTask {
    pg: Option<tokio_postgres::Config>,
    client: Option<Client>,
    mode: Option<Mode>,
    inc_column: String,
    ts_column: String,
    delay_ms: i64,
    interval: Duration,
    batch: usize,
    sources: Vec<Source>,
    next: usize,
    ready: VecDeque<SourceRecord>,
}

fn partition(key: &str, value: &str) -> JsonMap {
    let mut m = JsonMap::new();
    m.insert(key.into(), Json::String(value.to_string()));
    m
}

impl SourceTask for PostgresSourceTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let parsed = def().parse(config)?;
        let errors = check(config);
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e);
        }
        self.pg = Some(pg_config(config)?);
        self.mode = Some(match parsed.string("mode").unwrap_or("bulk") {
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            _ => Mode::Bulk,
        });
        self.inc_column = get(config, "incrementing.column.name").to_string();
        self.ts_column = get(config, "timestamp.column.name").to_string();
        self.delay_ms = parsed.int("timestamp.delay.interval.ms").unwrap_or(0);
        self.interval =
            Duration::from_millis(parsed.int("poll.interval.ms").unwrap_or(5000) as u64);
        self.batch = parsed.int("batch.max.rows").unwrap_or(100).max(1) as usize;
        let prefix = parsed.string("topic.prefix").unwrap_or("").to_string();
        let query = get(config, "query").to_string();
        let tables = if config.contains_key(TASK_TABLES) {
            list(config, TASK_TABLES)
        } else {
            tables(config)
        };
        let now = Instant::now();
        let mut sources: Vec<Source> = if query.is_empty() {
            tables
                .iter()
                .map(|t| Source {
                    partition: partition("table", t),
                    topic: format!("{prefix}{t}"),
                    from: quote_table(t),
                    name: t.clone(),
                    incrementing: None,
                    timestamp_us: None,
                    next_poll: now,
                    shape: None,
                })
                .collect()
        } else {
            vec![Source {
                partition: partition("query", &query),
                topic: prefix.clone(),
                from: format!("({query}) AS weir_query"),
                name: "query".into(),
                incrementing: None,
                timestamp_us: None,
                next_poll: now,
                shape: None,
            }]
        };
        for s in &mut sources {
            if let Some(o) = offsets.offset(&s.partition) {
                s.incrementing = o.get("incrementing").and_then(Json::as_i64);
                s.timestamp_us = o
                    .get("timestamp_nanos")
                    .and_then(Json::as_i64)
                    .map(|n| n.div_euclid(1000));
            }
        }
        self.sources = sources;
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>, TaskError>> {
        Box::pin(async move {
            if !self.ready.is_empty() {
                return Ok(self.take());
            }
            let now = Instant::now();
            let n = self.sources.len();
            let due = (0..n)
                .map(|k| (self.next + k) % n.max(1))
                .find(|&i| self.sources[i].next_poll <= now);
            let Some(i) = due else {
                let wake = self.sources.iter().map(|s| s.next_poll).min();
                let wait = wake
                    .map(|w| w.saturating_duration_since(now))
                    .unwrap_or(self.interval)
                    .min(Duration::from_millis(200));
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            };
            self.next = (i + 1) % n;
            if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                let pg = self.pg.as_ref().ok_or("the task was not started")?;
                self.client = Some(connect(pg).await?);
            }
            let full = match self.query(i).await {
                Ok(full) => full,
                Err(e) => {
                    // A lost connection is made again on the next poll.
                    if self.client.as_ref().is_some_and(|c| c.is_closed()) {
                        self.client = None;
                    }
                    return Err(e);
                }
            };
            // A full batch: more may be waiting, so poll again at once.
            self.sources[i].next_poll = if full { now } else { now + self.interval };
            Ok(self.take())
        })
    }
}

impl PostgresSourceTask {
    fn take(&mut self) -> Vec<SourceRecord> {
        let n = self.ready.len().min(self.batch);
        self.ready.drain(..n).collect()
    }

    /// Reads the table's columns: the record schema and the select list.
    async fn shape(&self, client: &Client, source: &Source) -> Result<Shape, String> {
        let probe = format!("SELECT * FROM {} LIMIT 0", source.from);
        let stmt = client
            .prepare(&probe)
            .await
            .map_err(|e| db_error(&format!("reading the columns of {}", source.name), &e))?;
        let mut fields = Vec::new();
        let mut select = Vec::new();
        let mut reads = Vec::new();
        for c in stmt.columns() {
            let not_null = match (c.table_oid(), c.column_id()) {
                (Some(oid), Some(att)) if oid != 0 => client
                    .query_opt(
                        "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                        &[&oid, &att],
                    )
                    .await
                    .map_err(|e| db_error("reading column nullability", &e))?
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false),
                _ => false,
            };
            let (schema, expr, read) =
                values::column(c.name(), c.type_(), c.type_modifier(), !not_null);
            fields.push((c.name().to_string(), schema));
            select.push(expr);
            reads.push(read);
        }
        for (mode_on, col) in [
            (self.mode.is_some_and(Mode::incrementing), &self.inc_column),
            (self.mode.is_some_and(Mode::timestamp), &self.ts_column),
        ] {
            if mode_on && !stmt.columns().iter().any(|c| c.name() == col.as_str()) {
                return Err(format!(
                    "{} has no column {col:?} (named by {})",
                    source.name,
                    if col == &self.inc_column {
                        "incrementing.column.name"
                    } else {
                        "timestamp.column.name"
                    }
                ));
            }
        }
        let mut schema = Schema::structure(fields);
        schema.name = Some(source.name.clone());
        Ok(Shape {
            schema: Arc::new(schema),
            select: select.join(", "),
            reads,
        })
    }

    /// Runs source `i`'s query into `ready`; true when it filled a batch.
    async fn query(&mut self, i: usize) -> Result<bool, String> {
        let client = self.client.as_ref().expect("connected above");
        if self.sources[i].shape.is_none() {
            let shape = self.shape(client, &self.sources[i]).await?;
            self.sources[i].shape = Some(shape);
        }
        let mode = self.mode.unwrap_or(Mode::Bulk);
        let source = &self.sources[i];
        let shape = source.shape.as_ref().expect("set above");
        let inc = quote(&self.inc_column);
        let ts = quote(&self.ts_column);
        let mut sql = format!("SELECT {}", shape.select);
        if mode.incrementing() {
            sql.push_str(&format!(", ({inc})::int8"));
        }
        if mode.timestamp() {
            sql.push_str(&format!(", (extract(epoch from {ts}) * 1000000)::int8"));
        }
        sql.push_str(&format!(" FROM {}", source.from));
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut conds = Vec::new();
        // The timestamp as a value of the column's own type (UTC session).
        let at =
            |n: usize| format!("(TIMESTAMPTZ 'epoch' + ${n}::int8 * INTERVAL '1 microsecond')");
        if mode.timestamp() {
            params.push(Box::new(self.delay_ms));
            conds.push(format!(
                "{ts} < CURRENT_TIMESTAMP - ${}::int8 * INTERVAL '1 millisecond'",
                params.len()
            ));
        }
        match (mode, source.incrementing, source.timestamp_us) {
            (Mode::Incrementing, Some(last), _) => {
                params.push(Box::new(last));
                conds.push(format!("{inc} > ${}::int8", params.len()));
            }
            (Mode::Timestamp, _, Some(last)) => {
                params.push(Box::new(last));
                conds.push(format!("{ts} > {}", at(params.len())));
            }
            (Mode::TimestampIncrementing, last_inc, Some(last_ts)) => {
                params.push(Box::new(last_ts));
                let t = at(params.len());
                params.push(Box::new(last_inc.unwrap_or(i64::MIN)));
                conds.push(format!(
                    "({ts} > {t} OR ({ts} = {t} AND {inc} > ${}::int8))",
                    params.len()
                ));
            }
            _ => {}
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let limited = matches!(mode, Mode::Incrementing | Mode::TimestampIncrementing);
        match mode {
            Mode::Bulk => {}
            // By the extra columns' positions (their names may repeat a column's).
            Mode::Incrementing | Mode::Timestamp => {
                sql.push_str(&format!(" ORDER BY {}", shape.reads.len() + 1))
            }
            Mode::TimestampIncrementing => sql.push_str(&format!(
                " ORDER BY {}, {}",
                shape.reads.len() + 2,
                shape.reads.len() + 1
            )),
        }
        if limited {
            sql.push_str(&format!(" LIMIT {}", self.batch));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .map_err(|e| db_error(&format!("polling {}", source.name), &e))?;
        let columns = shape.reads.len();
        let mut last = (source.incrementing, source.timestamp_us);
        for row in &rows {
            let mut value = Struct::new(shape.schema.clone());
            for (c, how) in shape.reads.iter().enumerate() {
                value.values[c] = values::read(row, c, *how)
                    .map_err(|e| format!("reading column {} of {}: {e}", c, source.name))?;
            }
            let mut extra = columns;
            let mut offset = JsonMap::new();
            if mode.incrementing() {
                let v: Option<i64> = row.get(extra);
                extra += 1;
                if let Some(v) = v {
                    last.0 = Some(v);
                    offset.insert("incrementing".into(), Json::from(v));
                }
            }
            if mode.timestamp() {
                let v: Option<i64> = row.get(extra);
                if let Some(v) = v {
                    last.1 = Some(v);
                }
                if let Some(t) = last.1 {
                    offset.insert("timestamp_nanos".into(), Json::from(t.saturating_mul(1000)));
                }
                if mode == Mode::TimestampIncrementing && !offset.contains_key("incrementing") {
                    offset.insert(
                        "incrementing".into(),
                        Json::from(last.0.unwrap_or(i64::MIN)),
                    );
                }
            }
            let record = ConnectRecord::new(
                source.topic.clone(),
                SchemaAndValue {
                    schema: Some(shape.schema.clone()),
                    value: Value::Struct(value),
                },
            );
            self.ready.push_back(SourceRecord {
                record,
                source_partition: source.partition.clone(),
                source_offset: offset,
            });
        }
        let full = limited && rows.len() >= self.batch;
        let s = &mut self.sources[i];
        s.incrementing = last.0;
        s.timestamp_us = last.1;
        Ok(full)
    }
}
