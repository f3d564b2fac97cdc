//! Kafka's `sasl.jaas.config` values, e.g.
//! `org.apache.kafka.common.security.plain.PlainLoginModule required
//! username="admin" password="admin-secret" user_alice="alice-secret";`
//! — a login module, its control flag and `key=value` options (values
//! quoted, `\` escaping the next character, or bare words), ending in ';'.
//! Brokers read their PLAIN users from it, clients their own credentials.

use std::collections::BTreeMap;

/// One login module entry.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values are passwords: only their names are shown.
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

const FLAGS: &[&str] = &["required", "requisite", "sufficient", "optional"];

/// Parses one `sasl.jaas.config` value. Errors give the character position
/// and never echo a value (they are passwords).
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let mut p = Parser { text, at: 0 };
    let module = p
        .word()
        .ok_or_else(|| p.error("expected a login module class name"))?;
    let flag = p
        .word()
        .ok_or_else(|| p.error("expected a control flag after the login module"))?;
    if !FLAGS.contains(&flag.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "sasl.jaas.config: {flag:?} is not a control flag (expected one of {})",
            FLAGS.join(", ")
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        p.skip_space();
        match p.peek() {
            Some(';') => {
                p.at += 1;
                break;
            }
            None => return Err(p.error("the entry does not end with ';'")),
            _ => {}
        }
        let key = p.word().ok_or_else(|| p.error("expected an option name"))?;
        p.skip_space();
        if p.peek() != Some('=') {
            return Err(p.error(&format!("option {key} has no '='")));
        }
        p.at += 1;
        p.skip_space();
        let value = if p.peek() == Some('"') {
            p.quoted()
                .map_err(|e| p.error(&format!("option {key}: {e}")))?
        } else {
            p.word()
                .ok_or_else(|| p.error(&format!("option {key} has no value")))?
        };
        options.insert(key, value);
    }
    p.skip_space();
    if p.at < text.len() {
        return Err(p.error("only one login module entry may be given"));
    }
    Ok(JaasEntry {
        module,
        flag,
        options,
    })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.at += c.len_utf8();
        }
    }

    /// A bare word: up to whitespace, '=', ';' or '"'.
    fn word(&mut self) -> Option<String> {
        self.skip_space();
        let start = self.at;
        while let Some(c) = self
            .peek()
            .filter(|c| !c.is_whitespace() && !matches!(c, '=' | ';' | '"'))
        {
            self.at += c.len_utf8();
        }
        (self.at > start).then(|| self.text[start..self.at].to_owned())
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, next)) => out.push(next),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("the quoted value is not closed".into())
    }

    fn error(&self, what: &str) -> String {
        format!("sasl.jaas.config: {what} (at character {})", self.at + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plain_entry_parses() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice="a \"quoted\" secret";"#,
        )
        .unwrap();
        assert_eq!(
            e.module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.options["username"], "admin");
        assert_eq!(e.options["user_alice"], "a \"quoted\" secret");
        assert_eq!(e.options.len(), 4);
        let bare = parse("m.Scram required username=alice password=pw;").unwrap();
        assert_eq!(bare.options["password"], "pw");
    }

    #[test]
    fn malformed_entries_are_refused_without_echoing_values() {
        for (bad, why) in [
            ("", "login module"),
            ("m.M", "control flag"),
            ("m.M maybe a=\"b\";", "not a control flag"),
            ("m.M required a=\"secret-value\"", "does not end"),
            ("m.M required a=\"secret-value;", "not closed"),
            ("m.M required a;", "has no '='"),
            ("m.M required a=b; m.N required;", "only one"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("secret-value"), "{err}");
        }
    }
}
