//! Java `SimpleDateFormat` patterns in UTC, as TimestampConverter and
//! TimestampRouter use them: `y M d H h k K m s S a E D` and the zone
//! letters `z Z X` (always UTC), `'quoted'` text and `''` for a quote.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct DatePattern {
    tokens: Vec<Token>,
}

impl DatePattern {
    /// The pattern, or Java's complaint about it.
    pub fn compile(pattern: &str) -> Result<DatePattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        let literal = |tokens: &mut Vec<Token>, s: String| match tokens.last_mut() {
            Some(Token::Literal(l)) => l.push_str(&s),
            _ => tokens.push(Token::Literal(s)),
        };
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    literal(&mut tokens, "'".into());
                    i += 2;
                    continue;
                }
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Unterminated quote".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                literal(&mut tokens, s);
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhkKmsSaEDzZX".contains(c) {
                    return Err(format!("Illegal pattern character '{c}'"));
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                tokens.push(Token::Field(c, n));
                i += n;
            } else {
                literal(&mut tokens, c.to_string());
                i += 1;
            }
        }
        Ok(DatePattern { tokens })
    }

    /// Milliseconds since the epoch as text.
    pub fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(DAY_MS);
        let ms_of_day = millis.rem_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1000 % 60;
        let milli = ms_of_day % 1000;
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Field(c, n) => {
                    let num = |v: i64| format!("{v:0width$}", width = *n);
                    let text = match c {
                        'y' if *n == 2 => format!("{:02}", y.rem_euclid(100)),
                        'y' => num(y),
                        'M' if *n >= 4 => MONTHS[m as usize - 1].to_string(),
                        'M' if *n == 3 => MONTHS[m as usize - 1][..3].to_string(),
                        'M' => num(m),
                        'd' => num(d),
                        'D' => num(days - days_from_civil(y, 1, 1) + 1),
                        'H' => num(hour),
                        'k' => num(if hour == 0 { 24 } else { hour }),
                        'K' => num(hour % 12),
                        'h' => num(if hour % 12 == 0 { 12 } else { hour % 12 }),
                        'm' => num(minute),
                        's' => num(second),
                        'S' => num(milli),
                        'a' => if hour < 12 { "AM" } else { "PM" }.to_string(),
                        'E' => {
                            let day = DAYS[days.rem_euclid(7) as usize];
                            if *n >= 4 {
                                day.to_string()
                            } else {
                                day[..3].to_string()
                            }
                        }
                        'z' => "UTC".to_string(),
                        'Z' => "+0000".to_string(),
                        _ => "Z".to_string(), // X
                    };
                    out.push_str(&text);
                }
            }
        }
        out
    }

    /// Text in this pattern as milliseconds since the epoch.
    pub fn parse(&self, text: &str) -> Option<i64> {
        let s: Vec<char> = text.chars().collect();
        let mut i = 0;
        let (mut y, mut mo, mut d) = (1970i64, 1i64, 1i64);
        let (mut h, mut mi, mut sec, mut ms) = (0i64, 0i64, 0i64, 0i64);
        let mut pm: Option<bool> = None;
        let mut offset_ms = 0i64;
        for (k, t) in self.tokens.iter().enumerate() {
            match t {
                Token::Literal(l) => {
                    for c in l.chars() {
                        if s.get(i) != Some(&c) {
                            return None;
                        }
                        i += 1;
                    }
                }
                Token::Field(c, n) => {
                    // Adjacent numeric fields take exactly their width.
                    let next_numeric = matches!(self.tokens.get(k + 1), Some(Token::Field(..)));
                    let mut number = || {
                        let start = i;
                        let neg = s.get(i) == Some(&'-') && *c == 'y';
                        if neg {
                            i += 1;
                        }
                        while i < s.len()
                            && s[i].is_ascii_digit()
                            && (!next_numeric || i - start < *n)
                        {
                            i += 1;
                        }
                        let digits: String = s[start..i].iter().collect();
                        digits.parse::<i64>().ok()
                    };
                    match c {
                        'y' => {
                            y = number()?;
                            if *n == 2 && (0..100).contains(&y) {
                                y += 2000;
                            }
                        }
                        'M' if *n >= 3 => {
                            let rest: String = s[i..].iter().collect();
                            let (idx, name) =
                                MONTHS.iter().enumerate().find_map(|(idx, name)| {
                                    let name = if *n == 3 { &name[..3] } else { *name };
                                    rest.starts_with(name).then_some((idx, name))
                                })?;
                            mo = idx as i64 + 1;
                            i += name.len();
                        }
                        'M' => mo = number()?,
                        'd' => d = number()?,
                        'D' => {
                            let day = number()?;
                            mo = 1;
                            d = day;
                        }
                        'H' | 'k' => h = number()? % 24,
                        'h' | 'K' => h = number()? % 12,
                        'm' => mi = number()?,
                        's' => sec = number()?,
                        'S' => ms = number()?,
                        'a' => {
                            let rest: String = s[i..].iter().take(2).collect();
                            pm = Some(match rest.to_ascii_uppercase().as_str() {
                                "AM" => false,
                                "PM" => true,
                                _ => return None,
                            });
                            i += 2;
                        }
                        'E' => {
                            let rest: String = s[i..].iter().collect();
                            let name = DAYS.iter().find_map(|day| {
                                let day = if *n >= 4 { *day } else { &day[..3] };
                                rest.starts_with(day).then_some(day)
                            })?;
                            i += name.len();
                        }
                        _ => {
                            // Zones: Z, UTC, GMT or ±hh[:]mm.
                            let rest: String = s[i..].iter().collect();
                            if let Some(p) =
                                ["UTC", "GMT", "Z"].iter().find(|p| rest.starts_with(**p))
                            {
                                i += p.len();
                            } else {
                                let sign = match s.get(i) {
                                    Some('+') => 1,
                                    Some('-') => -1,
                                    _ => return None,
                                };
                                i += 1;
                                let digits: String = s[i..]
                                    .iter()
                                    .take_while(|c| c.is_ascii_digit() || **c == ':')
                                    .collect();
                                i += digits.len();
                                let digits = digits.replace(':', "");
                                let hh: i64 = digits.get(..2)?.parse().ok()?;
                                let mm: i64 = digits.get(2..4).unwrap_or("00").parse().ok()?;
                                offset_ms = sign * (hh * 3_600_000 + mm * 60_000);
                            }
                        }
                    }
                }
            }
        }
        if i != s.len() || !(1..=12).contains(&mo) {
            return None;
        }
        if pm == Some(true) {
            h += 12;
        }
        let days = days_from_civil(y, mo, 1) + d - 1;
        Some(days * DAY_MS + h * 3_600_000 + mi * 60_000 + sec * 1000 + ms - offset_ms)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_in_utc() {
        // 2024-02-29T13:05:09.007Z
        let t = days_from_civil(2024, 2, 29) * DAY_MS + 13 * 3_600_000 + 5 * 60_000 + 9_007;
        let p = DatePattern::compile("yyyy-MM-dd'T'HH:mm:ss.SSSX").unwrap();
        assert_eq!(p.format(t), "2024-02-29T13:05:09.007Z");
        assert_eq!(p.parse("2024-02-29T13:05:09.007Z"), Some(t));
        let compact = DatePattern::compile("yyyyMMdd").unwrap();
        assert_eq!(compact.format(t), "20240229");
        assert_eq!(
            compact.parse("20240229"),
            Some(days_from_civil(2024, 2, 29) * DAY_MS)
        );
        let words = DatePattern::compile("EEE, d MMM yy hh:mm a").unwrap();
        assert_eq!(words.format(t), "Thu, 29 Feb 24 01:05 PM");
        assert_eq!(
            DatePattern::compile("yyyy-qq").unwrap_err(),
            "Illegal pattern character 'q'"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(p.format(-1), "1969-12-31T23:59:59.999Z");
    }
}
