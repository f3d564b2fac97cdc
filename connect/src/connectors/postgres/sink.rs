//! `weir.postgres.sink`: Confluent's JDBC sink. Each `put` is written in
//! one transaction: a row per record into the table `table.name.format`
//! names (`${topic}` replaced), by `insert.mode` a plain INSERT or
//! `INSERT … ON CONFLICT (pk) DO UPDATE`, a DELETE for a tombstone when
//! `delete.enabled`. With `auto.create` a missing table is made from the
//! record's schema, with `auto.evolve` optional fields the table lacks are
//! added as columns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::values::{self, TextParam};
use super::{connect, connection_def, db_error, pg_config, quote, quote_table, start_checked};
use crate::config_def::{ConfigDef, ConfigType, Importance, Validator};
use crate::connector::{BoxFuture, Connector, Props, SinkTask, TaskError};
use crate::data::{Schema, Value};
use crate::record::SinkRecord;

pub fn def() -> ConfigDef {
    connection_def(ConfigDef::new())
        .define(
            "table.name.format",
            ConfigType::String,
            Some("${topic}"),
            Importance::Medium,
            "The table to write a record to; ${topic} is replaced by the record's topic.",
        )
        .in_group("Writes")
        .define(
            "insert.mode",
            ConfigType::String,
            Some("insert"),
            Importance::High,
            "insert: INSERT each row; upsert: INSERT … ON CONFLICT (primary key) DO UPDATE.",
        )
        .validate_with(Validator::OneOf {
            values: vec!["insert", "upsert"],
            ignore_case: true,
        })
        .in_group("Writes")
        .define(
            "pk.mode",
            ConfigType::String,
            Some("none"),
            Importance::High,
            "Where the primary key comes from: none, record_key (the record's key: a struct, or a primitive named by pk.fields) or record_value (fields of the value).",
        )
        .validate_with(Validator::OneOf {
            values: vec!["none", "record_key", "record_value"],
            ignore_case: true,
        })
        .in_group("Data Mapping")
        .define(
            "pk.fields",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "The primary key's fields; empty for all of the key's (record_key) or value's (record_value) fields; the column's name for a primitive key.",
        )
        .in_group("Data Mapping")
        .define(
            "delete.enabled",
            ConfigType::Boolean,
            Some("false"),
            Importance::Medium,
            "Delete the row of a tombstone's key (requires pk.mode=record_key); otherwise tombstones are skipped.",
        )
        .in_group("Writes")
        .define(
            "auto.create",
            ConfigType::Boolean,
            Some("false"),
            Importance::Medium,
            "Create a missing table from the record's schema (CREATE TABLE).",
        )
        .in_group("DDL Support")
        .define(
            "auto.evolve",
            ConfigType::Boolean,
            Some("false"),
            Importance::Medium,
            "Add columns for optional fields the table lacks (ALTER TABLE … ADD COLUMN).",
        )
        .in_group("DDL Support")
        .define(
            "batch.size",
            ConfigType::Int,
            Some("3000"),
            Importance::Medium,
            "The most rows written in one statement batch (all of a put is one transaction).",
        )
        .validate_with(Validator::Range {
            min: Some(1.0),
            max: None,
        })
        .in_group("Writes")
}

fn get(config: &Props, key: &str) -> String {
    config
        .get(key)
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The checks beyond the keys' types, as (key, message).
pub fn check(config: &Props) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Err(e) = pg_config(config)
        && !e.starts_with("Missing required")
    {
        let key = if e.contains("connection.user") {
            "connection.user"
        } else {
            "connection.url"
        };
        errors.push((key.to_string(), e));
    }
    let pk = get(config, "pk.mode");
    let pk = if pk.is_empty() {
        "none".to_string()
    } else {
        pk
    };
    if get(config, "insert.mode") == "upsert" && pk == "none" {
        errors.push((
            "pk.mode".into(),
            "insert.mode=upsert requires a primary key: set pk.mode to record_key or record_value"
                .into(),
        ));
    }
    if get(config, "delete.enabled") == "true" && pk != "record_key" {
        errors.push((
            "delete.enabled".into(),
            format!("delete.enabled=true requires pk.mode=record_key (it is {pk}): a tombstone has only its key"),
        ));
    }
    if config
        .get("table.name.format")
        .is_some_and(|f| f.trim().is_empty())
    {
        errors.push((
            "table.name.format".into(),
            "table.name.format must not be empty".into(),
        ));
    }
    errors
}

#[derive(Default)]
pub struct PostgresSink {
    config: Props,
}

impl Connector for PostgresSink {
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
        vec![self.config.clone(); max_tasks.max(1)]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum PkMode {
    #[default]
    None,
    RecordKey,
    RecordValue,
}

#[derive(Default)]
pub struct PostgresSinkTask {
    pg: Option<tokio_postgres::Config>,
    client: Option<Client>,
    table_format: String,
    upsert: bool,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    delete: bool,
    auto_create: bool,
    auto_evolve: bool,
    batch: usize,
    /// Columns of the tables written so far (lowercase names as stored).
    tables: BTreeMap<String, BTreeSet<String>>,
}

/// One column's worth of a row: name, schema (if known) and value.
struct Cell {
    name: String,
    schema: Option<Arc<Schema>>,
    value: Value,
}

/// What one record asks of its table.
enum Op {
    Write { cells: Vec<Cell>, pk: Vec<String> },
    Delete { key: Vec<Cell> },
}

fn cells_of(schema: Option<&Arc<Schema>>, value: &Value, what: &str) -> Result<Vec<Cell>, String> {
    match value {
        Value::Struct(s) => Ok(s
            .schema
            .fields
            .iter()
            .zip(&s.values)
            .map(|(f, v)| Cell {
                name: f.name.clone(),
                schema: Some(f.schema.clone()),
                value: v.clone(),
            })
            .collect()),
        Value::Map(entries) if schema.is_none() => entries
            .iter()
            .map(|(k, v)| match k {
                Value::String(name) => Ok(Cell {
                    name: name.clone(),
                    schema: None,
                    value: v.clone(),
                }),
                other => Err(format!(
                    "the {what} is a map with a non-string key ({other:?})"
                )),
            })
            .collect(),
        other => Err(format!(
            "the {what} must be a Struct (or a schemaless map of column to value), not {}",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Struct(_) => "a struct",
        Value::Map(_) => "a map",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        _ => "a primitive",
    }
}

impl PostgresSinkTask {
    fn table_of(&self, topic: &str) -> String {
        self.table_format.replace("${topic}", topic)
    }

    fn key_cells(&self, r: &SinkRecord) -> Result<Vec<Cell>, String> {
        let rec = &r.record;
        match &rec.key {
            Value::Null => Err("pk.mode=record_key but the record has a null key".into()),
            Value::Struct(_) | Value::Map(_) => {
                let all = cells_of(rec.key_schema.as_ref(), &rec.key, "key")?;
                if self.pk_fields.is_empty() {
                    return Ok(all);
                }
                let mut out = Vec::new();
                for name in &self.pk_fields {
                    let mut found = all.iter().filter(|c| &c.name == name);
                    let c = found.next().ok_or_else(|| {
                        format!("pk.fields names {name:?}, which the record's key does not have")
                    })?;
                    out.push(Cell {
                        name: c.name.clone(),
                        schema: c.schema.clone(),
                        value: c.value.clone(),
                    });
                }
                Ok(out)
            }
            primitive => match self.pk_fields.as_slice() {
                [name] => Ok(vec![Cell {
                    name: name.clone(),
                    schema: rec.key_schema.clone(),
                    value: primitive.clone(),
                }]),
                _ => Err(
                    "a primitive record key needs exactly one column name in pk.fields (pk.mode=record_key)"
                        .into(),
                ),
            },
        }
    }

    fn op(&self, r: &SinkRecord) -> Result<Option<Op>, String> {
        let rec = &r.record;
        if rec.value.is_null() {
            if !self.delete {
                return Ok(None);
            }
            return Ok(Some(Op::Delete {
                key: self.key_cells(r)?,
            }));
        }
        let mut cells = cells_of(rec.value_schema.as_ref(), &rec.value, "record value")?;
        let pk = match self.pk_mode {
            PkMode::None => Vec::new(),
            PkMode::RecordKey => {
                let key = self.key_cells(r)?;
                let names: Vec<String> = key.iter().map(|c| c.name.clone()).collect();
                cells.retain(|c| !names.contains(&c.name));
                let mut all = key;
                all.append(&mut cells);
                cells = all;
                names
            }
            PkMode::RecordValue => {
                if self.pk_fields.is_empty() {
                    cells.iter().map(|c| c.name.clone()).collect()
                } else {
                    for f in &self.pk_fields {
                        if !cells.iter().any(|c| &c.name == f) {
                            return Err(format!(
                                "pk.fields names {f:?}, which the record's value does not have"
                            ));
                        }
                    }
                    self.pk_fields.clone()
                }
            }
        };
        Ok(Some(Op::Write { cells, pk }))
    }

    /// The table's columns, creating the table or adding columns as allowed.
    async fn ensure_table(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
        table: &str,
        cells: &[Cell],
        pk: &[String],
    ) -> Result<(), String> {
        if let Some(cols) = self.tables.get(table)
            && cells.iter().all(|c| cols.contains(&c.name))
        {
            return Ok(());
        }
        let cols = columns(tx, table).await?;
        let quoted = quote_table(table);
        let Some(cols) = cols else {
            if !self.auto_create {
                return Err(format!(
                    "Table {table:?} is missing and auto.create is disabled"
                ));
            }
            let mut defs = Vec::new();
            for c in cells {
                let schema = c.schema.as_ref().ok_or_else(|| {
                    format!(
                        "auto.create cannot create table {table:?}: the records have no schema (column {:?}); use a converter with schemas or create the table first",
                        c.name
                    )
                })?;
                let ty =
                    values::sql_type(schema).map_err(|e| format!("field {:?}: {e}", c.name))?;
                let null = if schema.optional && !pk.contains(&c.name) {
                    ""
                } else {
                    " NOT NULL"
                };
                defs.push(format!("{} {ty}{null}", quote(&c.name)));
            }
            if !pk.is_empty() {
                defs.push(format!(
                    "PRIMARY KEY ({})",
                    pk.iter().map(|p| quote(p)).collect::<Vec<_>>().join(", ")
                ));
            }
            let ddl = format!("CREATE TABLE IF NOT EXISTS {quoted} ({})", defs.join(", "));
            tracing::info!(%table, %ddl, "creating table");
            tx.batch_execute(&ddl)
                .await
                .map_err(|e| db_error(&format!("creating table {table:?}"), &e))?;
            self.tables.insert(
                table.to_string(),
                cells.iter().map(|c| c.name.clone()).collect(),
            );
            return Ok(());
        };
        let missing: Vec<&Cell> = cells.iter().filter(|c| !cols.contains(&c.name)).collect();
        if !missing.is_empty() {
            let names = missing
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if !self.auto_evolve {
                return Err(format!(
                    "Table {table:?} has no column for field(s) {names} and auto.evolve is disabled"
                ));
            }
            for c in &missing {
                let schema = c.schema.as_ref().ok_or_else(|| {
                    format!("auto.evolve cannot add column {:?} to {table:?}: the records have no schema", c.name)
                })?;
                let default = values::sql_default(schema)?;
                if !schema.optional && default.is_none() {
                    return Err(format!(
                        "Cannot ALTER TABLE {table:?} to add missing field {:?}, as the field is not optional and does not have a default value",
                        c.name
                    ));
                }
                let ty =
                    values::sql_type(schema).map_err(|e| format!("field {:?}: {e}", c.name))?;
                let ddl = format!(
                    "ALTER TABLE {quoted} ADD COLUMN {} {ty}{}",
                    quote(&c.name),
                    default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default()
                );
                tracing::info!(%table, %ddl, "adding a column");
                tx.batch_execute(&ddl)
                    .await
                    .map_err(|e| db_error(&format!("altering table {table:?}"), &e))?;
            }
        }
        let mut all = cols;
        all.extend(cells.iter().map(|c| c.name.clone()));
        self.tables.insert(table.to_string(), all);
        Ok(())
    }

    async fn write(&mut self, records: &[SinkRecord]) -> Result<(), String> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let pg = self.pg.as_ref().ok_or("the task was not started")?;
            self.client = Some(connect(pg).await?);
        }
        let mut client = self.client.take().expect("connected above");
        let result = self.write_in(&mut client, records).await;
        if !client.is_closed() {
            self.client = Some(client);
        }
        if result.is_err() {
            // DDL may have been rolled back with the rest.
            self.tables.clear();
        }
        result
    }

    async fn write_in(
        &mut self,
        client: &mut Client,
        records: &[SinkRecord],
    ) -> Result<(), String> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| db_error("beginning a transaction", &e))?;
        for chunk in records.chunks(self.batch.max(1)) {
            for r in chunk {
                let at = |e: String| {
                    format!(
                        "record {}@{} (offset {}): {e}",
                        r.record.topic,
                        r.record.kafka_partition.unwrap_or(-1),
                        r.kafka_offset
                    )
                };
                let table = self.table_of(&r.record.topic);
                let Some(op) = self.op(r).map_err(at)? else {
                    continue;
                };
                let (sql, cells) = match op {
                    Op::Delete { key } => {
                        let conds: Vec<String> = key
                            .iter()
                            .enumerate()
                            .map(|(i, c)| format!("{} = ${}", quote(&c.name), i + 1))
                            .collect();
                        (
                            format!(
                                "DELETE FROM {} WHERE {}",
                                quote_table(&table),
                                conds.join(" AND ")
                            ),
                            key,
                        )
                    }
                    Op::Write { cells, pk } => {
                        self.ensure_table(&tx, &table, &cells, &pk)
                            .await
                            .map_err(at)?;
                        (self.insert_sql(&table, &cells, &pk), cells)
                    }
                };
                let params: Vec<TextParam> = cells
                    .iter()
                    .map(|c| {
                        values::sql_text(c.schema.as_deref(), &c.value)
                            .map(TextParam)
                            .map_err(|e| at(format!("field {:?}: {e}", c.name)))
                    })
                    .collect::<Result<_, _>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                tx.execute(sql.as_str(), &refs)
                    .await
                    .map_err(|e| at(db_error(&format!("writing to {table:?}"), &e)))?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| db_error("committing the transaction", &e))
    }

    fn insert_sql(&self, table: &str, cells: &[Cell], pk: &[String]) -> String {
        let names: Vec<String> = cells.iter().map(|c| quote(&c.name)).collect();
        let marks: Vec<String> = (1..=cells.len()).map(|i| format!("${i}")).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote_table(table),
            names.join(", "),
            marks.join(", ")
        );
        if self.upsert {
            let keys: Vec<String> = pk.iter().map(|p| quote(p)).collect();
            let updates: Vec<String> = cells
                .iter()
                .filter(|c| !pk.contains(&c.name))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
                .collect();
            sql.push_str(&format!(" ON CONFLICT ({}) ", keys.join(", ")));
            if updates.is_empty() {
                sql.push_str("DO NOTHING");
            } else {
                sql.push_str(&format!("DO UPDATE SET {}", updates.join(", ")));
            }
        }
        sql
    }
}

/// A table's column names, or `None` when there is no such table.
async fn columns(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<Option<BTreeSet<String>>, String> {
    let rows = tx
        .query(
            "SELECT a.attname::text FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&quote_table(table)],
        )
        .await
        .map_err(|e| db_error(&format!("reading the columns of {table:?}"), &e))?;
    if rows.is_empty() {
        let exists = tx
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&quote_table(table)],
            )
            .await
            .map_err(|e| db_error(&format!("looking for table {table:?}"), &e))?
            .get::<_, bool>(0);
        if !exists {
            return Ok(None);
        }
    }
    Ok(Some(rows.iter().map(|r| r.get::<_, String>(0)).collect()))
}

impl SinkTask for PostgresSinkTask {
    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        let parsed = def().parse(config)?;
        if let Some((_, e)) = check(config).into_iter().next() {
            return Err(e);
        }
        self.pg = Some(pg_config(config)?);
        self.table_format = parsed
            .string("table.name.format")
            .unwrap_or("${topic}")
            .to_string();
        self.upsert = parsed
            .string("insert.mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("upsert"));
        self.pk_mode = match parsed
            .string("pk.mode")
            .unwrap_or("none")
            .to_ascii_lowercase()
            .as_str()
        {
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        self.pk_fields = parsed.list("pk.fields");
        self.delete = parsed.boolean("delete.enabled").unwrap_or(false);
        self.auto_create = parsed.boolean("auto.create").unwrap_or(false);
        self.auto_evolve = parsed.boolean("auto.evolve").unwrap_or(false);
        self.batch = parsed.int("batch.size").unwrap_or(3000).max(1) as usize;
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<(), TaskError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            self.write(&records).await
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), TaskError>> {
        // Every put committed its own transaction.
        Box::pin(async { Ok(()) })
    }
}
