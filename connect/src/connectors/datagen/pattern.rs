//! `weir.datagen`'s key and value patterns: text with `${…}` placeholders
//! filled per record from the record's sequence number, its task and a
//! generator seeded by (seed, task, sequence) — so a record's content
//! depends only on those, and a seeded run is the same every time, even
//! across restarts.

/// One placeholder.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Seq,
    Task,
    Timestamp,
    Int(i64, i64),
    Double(f64, f64),
    Uuid,
    Str(usize),
    Choice(Vec<String>),
    Bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    parts: Vec<Part>,
}

/// What a record's placeholders are filled from.
pub struct Context {
    pub seq: u64,
    pub task: u32,
    pub timestamp: i64,
    pub rng: SplitMix,
}

/// SplitMix64: tiny, and its output is fixed by its definition, so seeded
/// data stays the same across builds (a library's generator may change).
pub struct SplitMix(u64);

impl SplitMix {
    /// The generator of one record.
    pub fn for_record(seed: u64, task: u32, seq: u64) -> Self {
        let mut s = SplitMix(seed ^ (u64::from(task) << 48));
        let mixed = s.next() ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        SplitMix(mixed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (u128::from(self.next()) % span) as i128) as i64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn args<'a>(name: &str, inner: &'a str, col: usize) -> Result<Vec<&'a str>, String> {
    let rest = inner
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("'{name}' needs its arguments in parentheses at column {col}"))?;
    Ok(rest.split(',').map(str::trim).collect())
}

fn number<T: std::str::FromStr>(s: &str, what: &str, col: usize) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a valid {what} at column {col}"))
}

fn placeholder(inner: &str, col: usize) -> Result<Part, String> {
    let inner = inner.trim();
    Ok(match inner {
        "seq" => Part::Seq,
        "task" => Part::Task,
        "timestamp" => Part::Timestamp,
        "random.uuid" => Part::Uuid,
        "random.bool" => Part::Bool,
        _ if inner.starts_with("random.int") => {
            let a = args("random.int", inner, col)?;
            let [lo, hi] = a.as_slice() else {
                return Err(format!("random.int takes (min,max) at column {col}"));
            };
            let (lo, hi): (i64, i64) = (number(lo, "integer", col)?, number(hi, "integer", col)?);
            if lo > hi {
                return Err(format!("random.int's min is above its max at column {col}"));
            }
            Part::Int(lo, hi)
        }
        _ if inner.starts_with("random.double") => {
            let a = args("random.double", inner, col)?;
            let [lo, hi] = a.as_slice() else {
                return Err(format!("random.double takes (min,max) at column {col}"));
            };
            let (lo, hi): (f64, f64) = (number(lo, "number", col)?, number(hi, "number", col)?);
            if !(lo <= hi) {
                return Err(format!("random.double's min is above its max at column {col}"));
            }
            Part::Double(lo, hi)
        }
        _ if inner.starts_with("random.string") => {
            let a = args("random.string", inner, col)?;
            let [n] = a.as_slice() else {
                return Err(format!("random.string takes (length) at column {col}"));
            };
            Part::Str(number(n, "length", col)?)
        }
        _ if inner.starts_with("random.choice") => {
            let rest = inner
                .strip_prefix("random.choice(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("random.choice needs (a|b|…) at column {col}"))?;
            Part::Choice(rest.split('|').map(String::from).collect())
        }
        other => {
            return Err(format!(
                "unknown placeholder '{other}' at column {col} (known: seq, task, timestamp, random.int(min,max), random.double(min,max), random.string(length), random.choice(a|b), random.uuid, random.bool)"
            ));
        }
    })
}

impl Pattern {
    /// `$$` is a literal `$`; columns count characters from 1.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('$', Some('$')) => {
                    literal.push('$');
                    i += 2;
                }
                ('$', Some('{')) => {
                    let col = i + 1;
                    let close = chars[i + 2..]
                        .iter()
                        .position(|c| *c == '}')
                        .ok_or_else(|| format!("unclosed '${{' at column {col}"))?;
                    let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(placeholder(&inner, col)?);
                    i += close + 3;
                }
                (c, _) => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Pattern { parts })
    }

    pub fn render(&self, ctx: &mut Context) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Seq => out.push_str(&ctx.seq.to_string()),
                Part::Task => out.push_str(&ctx.task.to_string()),
                Part::Timestamp => out.push_str(&ctx.timestamp.to_string()),
                Part::Int(lo, hi) => out.push_str(&ctx.rng.between(*lo, *hi).to_string()),
                Part::Double(lo, hi) => {
                    let v = lo + (hi - lo) * ctx.rng.unit();
                    out.push_str(&format!("{v:.4}"));
                }
                Part::Bool => out.push_str(if ctx.rng.next() & 1 == 1 { "true" } else { "false" }),
                Part::Uuid => {
                    let (a, b) = (ctx.rng.next(), ctx.rng.next());
                    // Version 4, variant 1, as a random UUID is.
                    let a = (a & !0xF000) | 0x4000;
                    let b = (b & !(0b11 << 62)) | (0b10 << 62);
                    out.push_str(&format!(
                        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        a >> 32,
                        (a >> 16) & 0xFFFF,
                        a & 0xFFFF,
                        b >> 48,
                        b & 0xFFFF_FFFF_FFFF
                    ));
                }
                Part::Str(n) => {
                    const ALPHABET: &[u8] =
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    for _ in 0..*n {
                        out.push(ALPHABET[(ctx.rng.next() % ALPHABET.len() as u64) as usize] as char);
                    }
                }
                Part::Choice(options) => {
                    out.push_str(&options[(ctx.rng.next() % options.len() as u64) as usize]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(seed: u64, seq: u64) -> Context {
        Context {
            seq,
            task: 1,
            timestamp: 1_700_000_000_000,
            rng: SplitMix::for_record(seed, 1, seq),
        }
    }

    #[test]
    fn placeholders_fill_in_and_dollars_escape() {
        let p = Pattern::parse("id=${seq} t=${task} at=${timestamp} cost=$$5").unwrap();
        assert_eq!(p.render(&mut ctx(0, 42)), "id=42 t=1 at=1700000000000 cost=$5");
    }

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_differs() {
        let p = Pattern::parse(
            r#"{"u":"${random.uuid}","n":${random.int(1,6)},"s":"${random.string(8)}","c":"${random.choice(red|green)}","d":${random.double(0,1)},"b":${random.bool}}"#,
        )
        .unwrap();
        let a: Vec<String> = (0..50).map(|i| p.render(&mut ctx(7, i))).collect();
        let b: Vec<String> = (0..50).map(|i| p.render(&mut ctx(7, i))).collect();
        let c: Vec<String> = (0..50).map(|i| p.render(&mut ctx(8, i))).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for r in &a {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            let n = v["n"].as_i64().unwrap();
            assert!((1..=6).contains(&n), "{r}");
            assert_eq!(v["s"].as_str().unwrap().len(), 8);
            assert!(["red", "green"].contains(&v["c"].as_str().unwrap()));
            let u = v["u"].as_str().unwrap();
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4", "{u}");
        }
        // Every value of a small range shows up.
        let seen: std::collections::BTreeSet<i64> = a
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()["n"].as_i64().unwrap())
            .collect();
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn bad_patterns_name_the_column() {
        for (text, want) in [
            ("x ${seq", "unclosed '${' at column 3"),
            ("${nope}", "unknown placeholder 'nope' at column 1"),
            ("ab${random.int(5,1)}", "min is above its max at column 3"),
            ("${random.int(a,1)}", "'a' is not a valid integer at column 1"),
            ("${random.string}", "needs its arguments in parentheses"),
        ] {
            let e = Pattern::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
