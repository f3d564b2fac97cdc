//! `ssl.principal.mapping.rules` (KIP-371): how the subject of a client
//! certificate becomes a principal name, parsed and applied as Kafka's
//! `SslPrincipalMapper` does.
//!
//! The value is a comma-separated list of rules, tried in order:
//! `DEFAULT` gives the distinguished name unchanged, and
//! `RULE:pattern/replacement/` (optionally followed by `L` or `U`) applies
//! when `pattern` matches the whole name: every match of `pattern` in the
//! name is replaced by `replacement` (`$1`-style group references, `\` to
//! escape the next character), then lower- or upper-cased. A `/` inside a
//! pattern or replacement is written `\/`. The first rule that applies
//! wins; when none does, Kafka refuses the client (`map` gives `None`).
//!
//! Patterns are Rust `regex` syntax, which is Java's for everything a DN
//! rule needs (classes, groups, lazy and greedy repetition, anchors) but has
//! no look-around or back-references: such a rule is refused when the
//! broker starts. Where Java would fail only when a client connects — a
//! replacement with a bare `$`, a trailing `\` or an unknown `${name}` —
//! the rule is refused at start too.

use regex::{Captures, Regex};

/// Kafka's default: the distinguished name is the principal name.
pub const DEFAULT_RULES: &str = "DEFAULT";

/// Parsed mapping rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// The pattern as given, for finding each match.
        pattern: Regex,
        /// The pattern anchored at both ends: does it match the whole name?
        whole: Regex,
        replacement: Vec<Piece>,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// A part of a replacement: text, or the text a group matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

impl PrincipalMapper {
    /// Parses a rule list; the error says which rule is wrong and why.
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            let (rule, after) = split_rule(rest)?;
            if let Some(rule) = rule {
                parsed.push(rule);
            }
            rest = after.trim_start();
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for distinguished name `dn`, from the first rule
    /// that applies; `None` when none does.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| rule.apply(dn))
    }
}

/// Reads the rule at the start of `text` (`None` for an empty one, which
/// Kafka skips) and returns what follows its separating comma.
fn split_rule(text: &str) -> Result<(Option<Rule>, &str), String> {
    if let Some(after) = text.strip_prefix(',') {
        return Ok((None, after));
    }
    let (rule, after) = if let Some(after) = text.strip_prefix("DEFAULT") {
        (Rule::Default, after)
    } else if let Some(body) = text.strip_prefix("RULE:") {
        // A pattern or a replacement may hold commas: the rule ends only
        // after its second unescaped '/' (and its case letter).
        let (pattern, after) = until_slash(body)
            .ok_or_else(|| invalid(text, "no '/' ends the pattern (RULE:pattern/replacement/)"))?;
        let (replacement, after) = until_slash(after).ok_or_else(|| {
            invalid(
                text,
                "no '/' ends the replacement (RULE:pattern/replacement/)",
            )
        })?;
        let (case, after) = match after.as_bytes().first() {
            Some(b'L') => (Case::Lower, &after[1..]),
            Some(b'U') => (Case::Upper, &after[1..]),
            _ => (Case::Keep, after),
        };
        let own = &text[..text.len() - after.len()];
        let rule = Rule::replace(pattern, replacement, case).map_err(|why| invalid(own, &why))?;
        (rule, after)
    } else {
        return Err(invalid(
            first_rule(text),
            "a rule is DEFAULT or RULE:pattern/replacement/[L|U]",
        ));
    };
    let after = after.trim_start();
    match after.strip_prefix(',') {
        Some(next) => Ok((Some(rule), next)),
        None if after.is_empty() => Ok((Some(rule), after)),
        None => {
            let own = &text[..text.len() - after.len()];
            let extra = first_rule(after);
            Err(invalid(
                &format!("{own}{extra}"),
                &format!("unexpected {extra:?} after the rule"),
            ))
        }
    }
}

/// The text up to the first `/` not escaped by `\`, and what follows it.
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// The text up to the next comma, for messages.
fn first_rule(text: &str) -> &str {
    text.split(',').next().unwrap_or(text).trim()
}

fn invalid(rule: &str, why: &str) -> String {
    format!("invalid rule {:?}: {why}", rule.trim())
}

impl Rule {
    fn replace(pattern: &str, replacement: &str, case: Case) -> Result<Rule, String> {
        let compiled = Regex::new(pattern).map_err(|e| format!("bad pattern: {e}"))?;
        let whole =
            Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| format!("bad pattern: {e}"))?;
        let replacement = parse_replacement(replacement, &compiled)?;
        Ok(Rule::Replace {
            pattern: compiled,
            whole,
            replacement,
            case,
        })
    }

    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Replace {
            pattern,
            whole,
            replacement,
            case,
        } = self
        else {
            return Some(dn.to_owned());
        };
        if !whole.is_match(dn) {
            return None;
        }
        let replaced = replace_all(pattern, dn, replacement);
        Some(match case {
            Case::Keep => replaced,
            Case::Lower => replaced.to_lowercase(),
            Case::Upper => replaced.to_uppercase(),
        })
    }
}

/// Parses a replacement as Java's `Matcher.replaceAll` reads it: `\c` is
/// `c`; `$` and digits refer to the longest group number that exists
/// (a number no group has, not even by its first digit, stays text, as
/// Kafka escapes it); `${name}` to a named group.
fn parse_replacement(text: &str, pattern: &Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => literal.push(escaped),
                None => return Err("the replacement ends with a lone '\\'".into()),
            },
            '$' => {
                let rest = &text[at + 1..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    // The longest prefix of the digits naming a group.
                    let taken = (1..=digits)
                        .rev()
                        .find(|&n| rest[..n].parse::<usize>().is_ok_and(|g| g <= groups));
                    match taken {
                        Some(n) => {
                            flush(&mut pieces, &mut literal);
                            pieces.push(Piece::Group(rest[..n].parse().unwrap_or(0)));
                            for _ in 0..n {
                                chars.next();
                            }
                        }
                        None => literal.push('$'),
                    }
                } else if let Some(named) = rest.strip_prefix('{') {
                    let name = named
                        .split_once('}')
                        .map(|(name, _)| name)
                        .ok_or_else(|| "unclosed ${ in the replacement".to_string())?;
                    if !pattern.capture_names().flatten().any(|n| n == name) {
                        return Err(format!("the pattern has no group named {name:?}"));
                    }
                    flush(&mut pieces, &mut literal);
                    pieces.push(Piece::Named(name.to_owned()));
                    for _ in 0..name.chars().count() + 2 {
                        chars.next();
                    }
                } else {
                    return Err(
                        "a '$' in the replacement must name a group ($1, ${name}); write \\$ for a dollar sign"
                            .into(),
                    );
                }
            }
            _ => literal.push(c),
        }
    }
    flush(&mut pieces, &mut literal);
    Ok(pieces)
}

fn flush(pieces: &mut Vec<Piece>, literal: &mut String) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

/// Java's `String.replaceAll`: each match in turn, searching on from the
/// end of the last one (one character further after an empty match).
fn replace_all(pattern: &Regex, text: &str, replacement: &[Piece]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while from <= text.len() {
        let Some(caps) = pattern.captures_at(text, from) else {
            break;
        };
        let Some(found) = caps.get(0) else { break };
        out.push_str(&text[copied..found.start()]);
        expand(&caps, replacement, &mut out);
        copied = found.end();
        from = if found.is_empty() {
            match text[found.end()..].chars().next() {
                Some(c) => found.end() + c.len_utf8(),
                None => break,
            }
        } else {
            found.end()
        };
    }
    out.push_str(&text[copied..]);
    out
}

fn expand(caps: &Captures<'_>, replacement: &[Piece], out: &mut String) {
    for piece in replacement {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
            Piece::Named(name) => out.push_str(caps.name(name).map_or("", |m| m.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's documentation examples, KIP-371's and SslPrincipalMapper's
    /// behaviour: (rules, distinguished name, principal name or None).
    const CASES: &[(&str, &str, Option<&str>)] = &[
        (
            "DEFAULT",
            "CN=alice,OU=eng,O=Acme,C=US",
            Some("CN=alice,OU=eng,O=Acme,C=US"),
        ),
        // The security guide's examples.
        (
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
            "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
            Some("serviceuser"),
        ),
        (
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
            "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
            Some("adminuser@admin"),
        ),
        (
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
            "OU=Other,cn=Kafka.Client,O=x",
            Some("kafka.client"),
        ),
        (
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
            "OU=NoName,O=x",
            Some("OU=NoName,O=x"),
        ),
        // The rule used by this project's tests.
        (
            r"RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
            "CN=Alice,OU=eng,O=Acme",
            Some("alice"),
        ),
        (
            r"RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
            "CN=Alice",
            Some("CN=Alice"),
        ),
        // Upper-casing, and the first applying rule wins.
        (
            r"RULE:^CN=(.*)$/$1/U,RULE:^CN=(.*)$/never/",
            "CN=bob",
            Some("BOB"),
        ),
        // A pattern must match the whole name, not a part of it.
        (r"RULE:CN=([a-z]+)/$1/", "CN=bob,O=x", None),
        (r"RULE:CN=([a-z]+)/$1/", "CN=bob", Some("bob")),
        // No rule applies: the client is refused.
        (r"RULE:^CN=x$/y/", "CN=z", None),
        ("", "CN=z", None),
        // Every match is replaced (replaceAll), not only the first, and
        // the groups are those of each match.
        (r"RULE:((\w)=(\w+),?)+/$3;/", "a=b,c=d", Some("d;")),
        (r"RULE:.*?/x/", "ab", Some("xaxbx")),
        // Group references: a number no group has stays text; the longest
        // existing group number is taken; $0 is the whole match.
        (r"RULE:^CN=(.*)$/$1@$2/", "CN=x", Some("x@$2")),
        (r"RULE:^CN=(.*)$/$12/", "CN=x", Some("x2")),
        (r"RULE:^CN=(.*)$/[$0]/", "CN=x", Some("[CN=x]")),
        (r"RULE:^CN=(.*)$/$01/", "CN=x", Some("x")),
        (
            r"RULE:^(?<who>[^,]*).*$/${who}!/",
            "CN=x,O=y",
            Some("CN=x!"),
        ),
        // Escapes: \/ in a pattern or replacement, \$ for a dollar sign, and
        // commas inside a rule do not end it.
        (r"RULE:^CN=(.*)\/(.*)$/$1\/$2/", "CN=a/b", Some("a/b")),
        (r"RULE:^CN=(.*)$/\$$1/", "CN=x", Some("$x")),
        (
            r" RULE:^O=([^,]*),.*$/$1/ , DEFAULT ",
            "O=org,CN=x",
            Some("org"),
        ),
        (r"RULE:^O=([^,]*),.*$/$1/ , DEFAULT ", "CN=x", Some("CN=x")),
        // An empty rule is skipped.
        (",DEFAULT,", "CN=x", Some("CN=x")),
        (r"DEFAULT , RULE:x/y/", "x", Some("x")),
        // Lower-casing is Unicode's.
        (r"RULE:^CN=(.*)$/$1/L", "CN=ÄB", Some("äb")),
        // An empty replacement may give an empty name.
        (r"RULE:^.*$//", "CN=x", Some("")),
    ];

    #[test]
    fn rules_map_names_as_kafka_does() {
        for (rules, dn, want) in CASES {
            let mapper = PrincipalMapper::parse(rules)
                .unwrap_or_else(|e| panic!("{rules:?} should parse: {e}"));
            assert_eq!(mapper.map(dn).as_deref(), *want, "{rules:?} on {dn:?}");
        }
    }

    #[test]
    fn malformed_rules_are_refused_naming_the_rule() {
        for (rules, says) in [
            ("DEFAULTX", "\"DEFAULTX\""),
            ("RULE:^CN=(.*)$/$1", "no '/' ends the replacement"),
            ("RULE:^CN=(.*)$", "no '/' ends the pattern"),
            ("RULE:^CN=(.*)$/$1/X", "unexpected \"X\""),
            ("RULE:^CN=(.*)$/$1/l", "unexpected \"l\""),
            ("RULE:^CN=(.*)$/$1/L extra,DEFAULT", "unexpected \"extra\""),
            ("DEFAULT,nonsense", "\"nonsense\""),
            ("RULE:^CN=(.*$/$1/", "bad pattern"),
            // An unescaped '/' ends the pattern, even inside a class.
            (r"RULE:^CN=([^/]*)\/(.*)$/$1\/$2/", "bad pattern"),
            // Java's look-around is not in Rust's regex syntax.
            (r"RULE:^(?=CN).*$/x/", "bad pattern"),
            (r"RULE:^CN=(.*)$/$x/", "must name a group"),
            (r"RULE:^CN=(.*)$/x\/", "no '/' ends the replacement"),
            (r"RULE:^CN=(.*)$/${nope}/", "no group named \"nope\""),
            (r"RULE:^CN=(.*)$/${open/", "unclosed"),
        ] {
            let err = PrincipalMapper::parse(rules).expect_err(rules);
            assert!(err.contains(says), "{rules:?}: {err}");
        }
    }

    #[test]
    fn an_empty_match_is_replaced_as_java_does() {
        // "aaa".replaceAll("a*", "X") is "XX" in Java: the whole run, then
        // the empty match at the end.
        let mapper = PrincipalMapper::parse("RULE:a*/X/").unwrap();
        assert_eq!(mapper.map("aaa").as_deref(), Some("XX"));
        let mapper = PrincipalMapper::parse("RULE:b*/-/").unwrap();
        assert_eq!(mapper.map("").as_deref(), Some("-"));
    }
}
