//! `weir.datagen`: a source of made-up records for demos, tests and
//! benchmarks. Each task writes `rate` records a second to `kafka.topic`,
//! keys and values from `key.pattern` and `value.pattern` (see
//! [`pattern`]); with `seed` set the data is the same on every run. A
//! task's sequence number is its source offset (`{"task"}` → `{"seq"}`),
//! so a restarted task goes on where it stopped, with the same data it
//! would have made.

mod pattern;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use tokio::time::Instant;

use crate::config_def::{ConfigDef, ConfigType, Importance, ParsedValue, Validator};
use crate::connector::{
    BoxFuture, Connector, ConnectorPlugin, ConnectorType, OffsetReader, Props, SourceTask,
    TaskError, TaskFactory,
};
use crate::data::{Schema, SchemaAndValue, SchemaType, Value};
use crate::record::{ConnectRecord, SourceRecord};
use crate::store::offsets::JsonMap;
use pattern::{Context, Pattern, SplitMix};

pub const SOURCE: ConnectorPlugin = ConnectorPlugin {
    class: "weir.datagen",
    aliases: &["DatagenSource", "weir.datagen.DatagenSourceConnector"],
    kind: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(Datagen::default()),
    task: TaskFactory::Source(|| Box::new(DatagenTask::default())),
};

const TASK_INDEX: &str = "datagen.task.index";
const DEFAULT_VALUE: &str =
    r#"{"id": ${seq}, "task": ${task}, "user": "user-${random.int(1,100)}", "amount": ${random.int(1,500)}}"#;

fn valid_pattern(v: &ParsedValue) -> Result<(), String> {
    match v {
        ParsedValue::String(s) => Pattern::parse(s).map(|_| ()),
        _ => Ok(()),
    }
}

fn def() -> ConfigDef {
    ConfigDef::new()
        .define("kafka.topic", ConfigType::String, None, Importance::High, "The topic to write to.")
        .define(
            "rate",
            ConfigType::Double,
            Some("10"),
            Importance::High,
            "Records per second per task; 0 for as fast as the broker takes them.",
        )
        .validate_with(Validator::Range {
            min: Some(0.0),
            max: None,
        })
        .define(
            "iterations",
            ConfigType::Long,
            Some("-1"),
            Importance::Medium,
            "Records each task writes in all; -1 for no end.",
        )
        .define(
            "key.pattern",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "The key of each record; empty for a null key. Placeholders: ${seq}, ${task}, ${timestamp}, ${random.int(min,max)}, ${random.double(min,max)}, ${random.string(length)}, ${random.choice(a|b)}, ${random.uuid}, ${random.bool}; $$ for a dollar sign.",
        )
        .validate_with(Validator::Custom(valid_pattern))
        .define(
            "value.pattern",
            ConfigType::String,
            Some(DEFAULT_VALUE),
            Importance::Medium,
            "The value of each record, with the same placeholders as key.pattern.",
        )
        .validate_with(Validator::Custom(valid_pattern))
        .define(
            "value.format",
            ConfigType::String,
            Some("json"),
            Importance::Medium,
            "json: the value is parsed as JSON (schemaless data, so the JSON converter writes it as it reads); string: the text as it is.",
        )
        .validate_with(Validator::OneOf {
            values: vec!["json", "string"],
            ignore_case: true,
        })
        .define(
            "seed",
            // Text, so that unset can be told from any number.
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "Makes the data the same on every run; unset for different data each time.",
        )
        .define(
            "batch.size",
            ConfigType::Int,
            Some("500"),
            Importance::Low,
            "The most records one poll returns.",
        )
        .validate_with(Validator::Range {
            min: Some(1.0),
            max: None,
        })
}

#[derive(Default)]
pub struct Datagen {
    config: Props,
}

impl Connector for Datagen {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        def().parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        (0..max_tasks.max(1))
            .map(|i| {
                let mut c = self.config.clone();
                c.insert(TASK_INDEX.into(), i.to_string());
                c
            })
            .collect()
    }
}

#[derive(Default)]
pub struct DatagenTask {
    topic: String,
    task: u32,
    seed: u64,
    key: Option<Pattern>,
    value: Option<Pattern>,
    json: bool,
    rate: f64,
    iterations: Option<u64>,
    batch: usize,
    /// The next record's sequence number.
    seq: u64,
    /// Where the rate is counted from: (when, seq then).
    since: Option<(Instant, u64)>,
}

fn partition_of(task: u32) -> JsonMap {
    let mut m = JsonMap::new();
    m.insert("task".into(), Json::from(task));
    m
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl DatagenTask {
    /// How many records are due now, given the rate.
    fn due(&mut self, now: Instant) -> u64 {
        let left = self
            .iterations
            .map_or(u64::MAX, |n| n.saturating_sub(self.seq));
        let due = if self.rate == 0.0 {
            u64::MAX
        } else {
            let (start, base) = *self.since.get_or_insert((now, self.seq));
            let allowed = base + (now.duration_since(start).as_secs_f64() * self.rate) as u64;
            allowed.saturating_sub(self.seq)
        };
        due.min(left).min(self.batch as u64)
    }

    fn record(&self, seq: u64) -> SourceRecord {
        let timestamp = now_ms();
        let mut ctx = Context {
            seq,
            task: self.task,
            timestamp,
            rng: SplitMix::for_record(self.seed, self.task, seq),
        };
        let key = self.key.as_ref().map(|p| p.render(&mut ctx));
        let text = self.value.as_ref().map(|p| p.render(&mut ctx)).unwrap_or_default();
        let value = if self.json {
            // A pattern that does not render JSON (a choice with a quote,
            // say) still gets through, as text.
            match serde_json::from_str::<Json>(&text) {
                Ok(j) => SchemaAndValue::schemaless(Value::from_json(&j)),
                Err(_) => SchemaAndValue::schemaless(Value::String(text)),
            }
        } else {
            SchemaAndValue {
                schema: Some(std::sync::Arc::new(Schema::of(SchemaType::String))),
                value: Value::String(text),
            }
        };
        let mut record = ConnectRecord::new(self.topic.clone(), value);
        if let Some(k) = key {
            record = record.with_key(SchemaAndValue {
                schema: Some(std::sync::Arc::new(Schema::of(SchemaType::String))),
                value: Value::String(k),
            });
        }
        record.timestamp = Some(timestamp);
        let mut offset = JsonMap::new();
        offset.insert("seq".into(), Json::from(seq + 1));
        SourceRecord {
            record,
            source_partition: partition_of(self.task),
            source_offset: offset,
        }
    }
}

impl SourceTask for DatagenTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        let parsed = def().parse(config)?;
        self.topic = parsed.string("kafka.topic").unwrap_or_default().to_string();
        self.task = config
            .get(TASK_INDEX)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        self.seed = match parsed.string("seed").filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| format!("Invalid value {s} for configuration seed: Not a number of type LONG"))?
                as u64,
            None => now_ms() as u64 ^ u64::from(std::process::id()) << 32,
        };
        let pattern = |k: &str| -> Result<Option<Pattern>, String> {
            match parsed.string(k).filter(|s| !s.is_empty()) {
                Some(p) => Pattern::parse(p).map(Some).map_err(|e| format!("{k}: {e}")),
                None => Ok(None),
            }
        };
        self.key = pattern("key.pattern")?;
        self.value = pattern("value.pattern")?;
        self.json = parsed
            .string("value.format")
            .is_some_and(|f| f.eq_ignore_ascii_case("json"));
        self.rate = parsed.double("rate").unwrap_or(10.0);
        self.iterations = parsed
            .int("iterations")
            .filter(|n| *n >= 0)
            .map(|n| n as u64);
        self.batch = parsed.int("batch.size").unwrap_or(500).max(1) as usize;
        self.seq = offsets
            .offset(&partition_of(self.task))
            .and_then(|o| o.get("seq")?.as_u64())
            .unwrap_or(0);
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>, TaskError>> {
        Box::pin(async move {
            let n = self.due(Instant::now());
            if n == 0 {
                // Wake for the next record, or now and then to let the
                // framework check whether to stop.
                let wait = if self.rate > 0.0 {
                    Duration::from_secs_f64((1.0 / self.rate).min(0.1))
                } else {
                    Duration::from_millis(100)
                };
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            }
            let out: Vec<SourceRecord> = (self.seq..self.seq + n).map(|s| self.record(s)).collect();
            self.seq += n;
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;

    struct NoOffsets;
    impl OffsetReader for NoOffsets {
        fn offset(&self, _: &JsonMap) -> Option<JsonMap> {
            None
        }
    }

    struct At(u64);
    impl OffsetReader for At {
        fn offset(&self, _: &JsonMap) -> Option<JsonMap> {
            let mut m = JsonMap::new();
            m.insert("seq".into(), Json::from(self.0));
            Some(m)
        }
    }

    fn task(extra: &[(&str, &str)], offsets: &dyn OffsetReader) -> DatagenTask {
        let mut c = props(&[("kafka.topic", "t"), ("seed", "42"), ("rate", "0")]);
        c.extend(props(extra));
        let mut t = DatagenTask::default();
        t.start(&c, offsets).unwrap();
        t
    }

    fn values(records: &[SourceRecord]) -> Vec<Value> {
        records.iter().map(|r| r.record.value.clone()).collect()
    }

    #[tokio::test]
    async fn seeded_data_repeats_and_a_restart_goes_on_with_the_same_records() {
        let mut a = task(&[("iterations", "10"), ("batch.size", "6")], &NoOffsets);
        let first = a.poll().await.unwrap();
        let second = a.poll().await.unwrap();
        assert_eq!((first.len(), second.len()), (6, 4));
        assert!(a.poll().await.unwrap().is_empty(), "iterations reached");
        assert_eq!(second[3].source_offset["seq"], 10);
        // A task restarted from offset 6 makes records 6.. again, the same.
        let mut b = task(&[("iterations", "10")], &At(6));
        let again = b.poll().await.unwrap();
        assert_eq!(values(&again), values(&second));
        // The default value is a JSON object.
        let Value::Map(fields) = &first[0].record.value else {
            panic!("{:?}", first[0].record.value)
        };
        assert!(fields.contains(&(Value::String("id".into()), Value::Int64(0))));
    }

    #[tokio::test]
    async fn keys_strings_and_tasks() {
        let mut c = props(&[
            ("kafka.topic", "t"),
            ("key.pattern", "k-${task}-${seq}"),
            ("value.pattern", "v${seq}"),
            ("value.format", "string"),
            ("rate", "0"),
            ("iterations", "2"),
        ]);
        let mut conn = Datagen::default();
        conn.start(&c).unwrap();
        let tasks = conn.task_configs(3);
        assert_eq!(tasks.len(), 3);
        c = tasks[2].clone();
        let mut t = DatagenTask::default();
        t.start(&c, &NoOffsets).unwrap();
        let r = t.poll().await.unwrap();
        assert_eq!(r[1].record.key, Value::String("k-2-1".into()));
        assert_eq!(r[1].record.value, Value::String("v1".into()));
        assert_eq!(r[1].source_partition["task"], 2);
    }

    #[test]
    fn the_rate_paces_records() {
        let mut t = task(&[("rate", "100")], &NoOffsets);
        let start = Instant::now();
        assert_eq!(t.due(start), 0);
        assert_eq!(t.due(start + Duration::from_millis(500)), 50);
        t.seq = 50;
        assert_eq!(t.due(start + Duration::from_millis(500)), 0);
        assert_eq!(t.due(start + Duration::from_secs(100)), 500, "capped at batch.size");
    }

    #[test]
    fn bad_config_names_the_key() {
        let mut c = Datagen::default();
        let e = c
            .start(&props(&[("kafka.topic", "t"), ("value.pattern", "${oops}")]))
            .unwrap_err();
        assert!(e.contains("value.pattern") && e.contains("unknown placeholder 'oops'"), "{e}");
        let e = c.start(&props(&[])).unwrap_err();
        assert!(e.contains("kafka.topic"), "{e}");
    }
}
