//! Topic routers: `TimestampRouter` (`topic.format` with `${topic}` and
//! `${timestamp}`, the record's timestamp in `timestamp.format`, UTC) and
//! `RegexRouter` (a whole-name match, replaced with Java's `$n` groups).

use regex::Regex;

use super::BuildError;
use super::datetime::DatePattern;
use super::predicates::{full_match, valid_regex};
use super::util::Side;
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, ParsedValue, Validator};
use crate::data::DataError;
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

pub fn timestamp_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "topic.format",
            ConfigType::String,
            Some("${topic}-${timestamp}"),
            Importance::High,
            "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively.",
        )
        .define(
            "timestamp.format",
            ConfigType::String,
            Some("yyyyMMdd"),
            Importance::High,
            "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.",
        )
        .validate_with(Validator::Custom(valid_date_pattern))
}

pub(crate) fn valid_date_pattern(v: &ParsedValue) -> Result<(), String> {
    match v {
        ParsedValue::String(s) => DatePattern::compile(s).map(|_| ()),
        _ => Ok(()),
    }
}

struct TimestampRouter {
    topic_format: String,
    timestamp_format: DatePattern,
}

pub fn build_timestamp(p: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let format = p.string("timestamp.format").unwrap_or("yyyyMMdd");
    Ok(Box::new(TimestampRouter {
        topic_format: p.string("topic.format").unwrap_or_default().to_string(),
        timestamp_format: DatePattern::compile(format).map_err(|e| ("timestamp.format", e))?,
    }))
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let ts = record.timestamp.ok_or_else(|| {
            DataError::new(format!(
                "Timestamp missing on record: topic {}, partition {:?}",
                record.topic, record.kafka_partition
            ))
        })?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &self.timestamp_format.format(ts));
        Ok(Some(record))
    }
}

pub fn regex_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "regex",
            ConfigType::String,
            None,
            Importance::High,
            "Regular expression to use for matching.",
        )
        .validate_with(Validator::Custom(valid_regex))
        .define(
            "replacement",
            ConfigType::String,
            None,
            Importance::High,
            "Replacement string.",
        )
}

struct RegexRouter {
    regex: Regex,
    replacement: String,
}

pub fn build_regex(p: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let regex =
        full_match(p.string("regex").unwrap_or_default()).map_err(|e| ("regex", e.to_string()))?;
    Ok(Box::new(RegexRouter {
        regex,
        replacement: p.string("replacement").unwrap_or_default().to_string(),
    }))
}

/// Java's `Matcher.appendReplacement`: `$n` (as many digits as name a
/// group), `${name}`, and `\x` for a literal `x`.
fn expand(caps: &regex::Captures, replacement: &str) -> Result<String, DataError> {
    let chars: Vec<char> = replacement.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                let end = chars[i..].iter().position(|c| *c == '}').map(|p| p + i);
                let end = end.ok_or_else(|| {
                    DataError::new("named capturing group is missing trailing '}'")
                })?;
                let name: String = chars[i + 2..end].iter().collect();
                let group = caps
                    .name(&name)
                    .ok_or_else(|| DataError::new(format!("No group with name {{{name}}}")))?;
                out.push_str(group.as_str());
                i = end + 1;
            }
            '$' => {
                let mut j = i + 1;
                let mut group: Option<usize> = None;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    let candidate =
                        group.unwrap_or(0) * 10 + chars[j].to_digit(10).unwrap_or(0) as usize;
                    if group.is_some() && candidate >= caps.len() {
                        break;
                    }
                    group = Some(candidate);
                    j += 1;
                }
                let g = group.ok_or_else(|| DataError::new("Illegal group reference"))?;
                if g >= caps.len() {
                    return Err(DataError::new(format!("No group {g}")));
                }
                out.push_str(caps.get(g).map(|m| m.as_str()).unwrap_or(""));
                i = j;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        if let Some(caps) = self.regex.captures(&record.topic) {
            record.topic = expand(&caps, &self.replacement)?;
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaAndValue;
    use crate::test_props as props;

    fn record(topic: &str) -> ConnectRecord {
        ConnectRecord::new(topic, SchemaAndValue::null())
    }

    #[test]
    fn regex_router_rewrites_whole_matches_only() {
        let t = build_regex(
            &regex_def()
                .parse(&props(&[
                    ("regex", "(.*)-(v\\d+)"),
                    ("replacement", "$2_$1\\$"),
                ]))
                .unwrap(),
            Side::Value,
        )
        .unwrap();
        assert_eq!(
            t.apply(record("orders-v2")).unwrap().unwrap().topic,
            "v2_orders$"
        );
        assert_eq!(t.apply(record("orders")).unwrap().unwrap().topic, "orders");
        let bad = regex_def().validate(&props(&[("regex", "(("), ("replacement", "x")]));
        assert!(bad[0].errors[0].contains("entry must be a Java-compatible regular expression"));
    }

    #[test]
    fn timestamp_router_formats_the_record_time() {
        let t = build_timestamp(&timestamp_def().parse(&props(&[])).unwrap(), Side::Value).unwrap();
        let mut r = record("logs");
        r.timestamp = Some(1_709_211_909_007); // 2024-02-29T13:05:09.007Z
        assert_eq!(t.apply(r).unwrap().unwrap().topic, "logs-20240229");
        let custom = build_timestamp(
            &timestamp_def()
                .parse(&props(&[
                    ("topic.format", "${timestamp}.${topic}"),
                    ("timestamp.format", "yyyy-MM"),
                ]))
                .unwrap(),
            Side::Value,
        )
        .unwrap();
        let mut r = record("logs");
        r.timestamp = Some(1_709_211_909_007);
        assert_eq!(custom.apply(r).unwrap().unwrap().topic, "2024-02.logs");
        assert!(
            custom
                .apply(record("x"))
                .unwrap_err()
                .0
                .starts_with("Timestamp missing on record")
        );
    }
}
