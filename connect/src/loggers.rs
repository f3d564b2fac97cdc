//! Log levels changed at run time (`/admin/loggers`, KIP-495 and KIP-976).
//! A logger is a `tracing` target prefix — a module path such as
//! `weir_connect::worker::sink` — and `root` is the default level; each
//! change rebuilds the process's filter from the root level and every
//! logger's, through a [`LogLevels`] backend the binary provides.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Applies a filter, in `tracing`'s EnvFilter syntax (`info,a::b=debug`).
pub trait LogLevels: Send + Sync {
    fn apply(&self, directives: &str) -> Result<(), String>;
}

pub const ROOT: &str = "root";

/// A logger's level and when it was last set through the API (ms since
/// the epoch; none when it came from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerLevel {
    pub level: String,
    pub last_modified: Option<i64>,
}

pub struct Loggers {
    levels: Mutex<BTreeMap<String, LoggerLevel>>,
    backend: Option<Box<dyn LogLevels>>,
}

/// Kafka's (log4j's) level names, as `tracing` spells them.
pub fn parse_level(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_uppercase().as_str() {
        "OFF" => "off",
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        "TRACE" => "trace",
        _ => return None,
    })
}

fn shown(level: &str) -> String {
    level.to_ascii_uppercase()
}

impl Loggers {
    /// From the filter the process started with (`--log`): its bare level
    /// is the root's, each `target=level` a logger's.
    pub fn new(initial: &str, backend: Option<Box<dyn LogLevels>>) -> Loggers {
        let mut levels = BTreeMap::new();
        for d in initial.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, level) = match d.split_once('=') {
                Some((t, l)) => (t.trim(), l.trim()),
                None if parse_level(d).is_some() => (ROOT, d),
                // Span filters and the like: kept out of the API's view.
                None => continue,
            };
            if let Some(level) = parse_level(level) {
                levels.insert(
                    name.to_string(),
                    LoggerLevel {
                        level: shown(level),
                        last_modified: None,
                    },
                );
            }
        }
        levels.entry(ROOT.to_string()).or_insert(LoggerLevel {
            level: "INFO".into(),
            last_modified: None,
        });
        Loggers {
            levels: Mutex::new(levels),
            backend,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LoggerLevel>> {
        self.levels.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn all(&self) -> BTreeMap<String, LoggerLevel> {
        self.lock().clone()
    }

    /// A logger's level: its own, or that of the nearest parent module
    /// that has one, or the root's.
    pub fn get(&self, name: &str) -> LoggerLevel {
        let levels = self.lock();
        let mut prefix = name;
        loop {
            if let Some(l) = levels.get(prefix) {
                return l.clone();
            }
            match prefix.rsplit_once("::").or_else(|| prefix.rsplit_once('.')) {
                Some((parent, _)) => prefix = parent,
                None => return levels[ROOT].clone(),
            }
        }
    }

    /// Sets a logger and its children (whose own levels are dropped, as
    /// log4j's do); returns the loggers whose level changed.
    pub fn set(&self, name: &str, level: &str, now_ms: i64) -> Result<Vec<String>, String> {
        let level = parse_level(level).ok_or_else(|| format!("Invalid log level '{level}'."))?;
        let mut levels = self.lock();
        let child = |n: &str| {
            name == ROOT
                || n.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::") || rest.starts_with('.'))
        };
        let mut changed: Vec<String> = levels
            .keys()
            .filter(|n| n.as_str() != name && child(n))
            .cloned()
            .collect();
        for n in &changed {
            levels.remove(n);
        }
        levels.insert(
            name.to_string(),
            LoggerLevel {
                level: shown(level),
                last_modified: Some(now_ms),
            },
        );
        changed.insert(0, name.to_string());
        let directives = directives(&levels);
        drop(levels);
        if let Some(b) = &self.backend {
            b.apply(&directives)?;
        }
        Ok(changed)
    }
}

/// The filter for these levels: the root's first, then each logger's.
fn directives(levels: &BTreeMap<String, LoggerLevel>) -> String {
    let mut out = vec![levels[ROOT].level.to_ascii_lowercase()];
    out.extend(
        levels
            .iter()
            .filter(|(n, _)| n.as_str() != ROOT)
            .map(|(n, l)| format!("{n}={}", l.level.to_ascii_lowercase())),
    );
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Seen(Arc<Mutex<Vec<String>>>);
    impl LogLevels for Seen {
        fn apply(&self, d: &str) -> Result<(), String> {
            self.0.lock().unwrap().push(d.to_string());
            Ok(())
        }
    }

    #[test]
    fn levels_from_the_command_line_and_inheritance() {
        let l = Loggers::new("warn,weir_connect=debug", None);
        assert_eq!(l.get(ROOT).level, "WARN");
        assert_eq!(l.get("weir_connect::worker::sink").level, "DEBUG");
        assert_eq!(l.get("weir_broker").level, "WARN");
        assert_eq!(l.get("weir_connect").last_modified, None);
        assert_eq!(Loggers::new("", None).get(ROOT).level, "INFO");
    }

    #[test]
    fn setting_a_parent_resets_its_children_and_rebuilds_the_filter() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let l = Loggers::new(
            "info,weir_connect::worker=trace",
            Some(Box::new(Seen(seen.clone()))),
        );
        let changed = l.set("weir_connect", "DEBUG", 7).unwrap();
        assert_eq!(changed, vec!["weir_connect", "weir_connect::worker"]);
        assert_eq!(l.get("weir_connect::worker::sink").level, "DEBUG");
        assert_eq!(l.get("weir_connect").last_modified, Some(7));
        assert_eq!(seen.lock().unwrap().last().unwrap(), "info,weir_connect=debug");
        let e = l.set("x", "LOUD", 8).unwrap_err();
        assert_eq!(e, "Invalid log level 'LOUD'.");
        l.set(ROOT, "fatal", 9).unwrap();
        assert_eq!(l.all().len(), 1);
        assert_eq!(seen.lock().unwrap().last().unwrap(), "error");
    }
}
