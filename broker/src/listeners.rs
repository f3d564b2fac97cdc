//! Named listeners, as Kafka spells them: `listeners`,
//! `advertised.listeners`, `listener.security.protocol.map` and
//! `inter.broker.listener.name`. A broker binds every listener, registers
//! every advertised endpoint under its listener's name, and answers each
//! client with the endpoints of the listener it connected through; brokers
//! reach each other through the inter-broker listener.
//!
//! Without `listeners`, `--listen`/`--advertise` make the one listener
//! `PLAINTEXT`, as before. All four of Kafka's security protocols are
//! served: TLS (`tls.rs`) on SSL and SASL_SSL, SASL (`sasl/`) on
//! SASL_PLAINTEXT and SASL_SSL, the inter-broker listener included
//! (`peers.rs` is how brokers dial it).

use std::collections::BTreeMap;

/// The listener clients reach when nothing names another.
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

/// Kafka's default `listener.security.protocol.map`.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// One `NAME://HOST:PORT` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddress {
    pub name: String,
    /// Empty for "every interface" (`PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl ListenerAddress {
    /// `HOST:PORT` to bind: an empty host binds every interface.
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port)
    }
}

/// Parses a comma-separated `NAME://HOST:PORT` list (IPv6 hosts in
/// brackets). Names are upper-cased as Kafka does and must be unique.
pub fn parse_list(value: &str) -> Result<Vec<ListenerAddress>, String> {
    let mut out: Vec<ListenerAddress> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("{entry:?} is not NAME://HOST:PORT"))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "{entry:?}: listener name {name:?} must be letters, digits, '_' or '-'"
            ));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{entry:?}: port {port:?} is not a number from 0 to 65535"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        out.push(ListenerAddress { name, host, port });
    }
    Ok(out)
}

/// Parses `NAME:PROTOCOL,…`.
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?} is not NAME:PROTOCOL"))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!(
                "{entry:?}: unknown security protocol {protocol:?} (expected one of {})",
                PROTOCOLS.join(", ")
            ));
        }
        out.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(out)
}

/// The listeners a broker serves, checked against each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// What to bind, in the order given.
    pub bind: Vec<ListenerAddress>,
    /// Each bound listener's security protocol (`PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT` or `SASL_SSL`).
    pub protocols: BTreeMap<String, String>,
    /// What to register per listener name; a host or port left out (empty
    /// host, port 0) is filled in from the bound socket at start.
    pub advertised: Vec<ListenerAddress>,
    pub inter_broker: String,
}

/// The settings that decide the listeners; `legacy_*` are `--listen` and
/// `--advertise`, used when `listeners` is not set.
pub struct ListenerSettings<'a> {
    pub listeners: Option<&'a str>,
    pub advertised: Option<&'a str>,
    pub protocol_map: &'a str,
    pub inter_broker: Option<&'a str>,
    pub legacy_listen: &'a str,
    pub legacy_advertise: Option<&'a str>,
}

/// Resolves and checks the listener settings: every listener has a
/// security protocol we serve, advertised names are listeners, and the
/// inter-broker listener exists.
pub fn resolve(s: &ListenerSettings<'_>) -> Result<Listeners, String> {
    let protocols = parse_protocol_map(s.protocol_map)?;
    let bind = match s.listeners {
        Some(list) => parse_list(list)?,
        None => vec![legacy(DEFAULT_LISTENER, s.legacy_listen)?],
    };
    if bind.is_empty() {
        return Err("listeners is empty".into());
    }
    for l in &bind {
        if !protocols.contains_key(&l.name) {
            return Err(format!(
                "listener {} has no security protocol in listener.security.protocol.map",
                l.name
            ));
        }
    }
    let advertised = match (s.advertised, s.listeners) {
        (Some(list), _) => parse_list(list)?,
        // Legacy flags: `--advertise` names the one listener's address.
        (None, None) => match s.legacy_advertise {
            Some(a) => vec![legacy(DEFAULT_LISTENER, a)?],
            None => bind.clone(),
        },
        (None, Some(_)) => bind.clone(),
    };
    for a in &advertised {
        if !bind.iter().any(|l| l.name == a.name) {
            return Err(format!(
                "advertised.listeners names {}, which is not in listeners",
                a.name
            ));
        }
    }
    // A listener not advertised is still served; brokers only register
    // what is advertised. Each listener is advertised at most once.
    let inter_broker = match s.inter_broker {
        Some(name) => name.trim().to_ascii_uppercase(),
        None if bind.iter().any(|l| l.name == DEFAULT_LISTENER) => DEFAULT_LISTENER.to_owned(),
        None => bind[0].name.clone(),
    };
    if !advertised.iter().any(|a| a.name == inter_broker) {
        return Err(format!(
            "inter.broker.listener.name {inter_broker} is not an advertised listener"
        ));
    }
    let protocols = bind
        .iter()
        .map(|l| (l.name.clone(), protocols[&l.name].clone()))
        .collect();
    Ok(Listeners {
        bind,
        protocols,
        advertised,
        inter_broker,
    })
}

/// `HOST:PORT` as a listener named `name`.
fn legacy(name: &str, address: &str) -> Result<ListenerAddress, String> {
    let mut parsed = parse_list(&format!("{name}://{address}"))?;
    Ok(parsed.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        listeners: Option<&'a str>,
        advertised: Option<&'a str>,
    ) -> ListenerSettings<'a> {
        ListenerSettings {
            listeners,
            advertised,
            protocol_map: "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,SECURE:SSL",
            inter_broker: None,
            legacy_listen: "127.0.0.1:9092",
            legacy_advertise: None,
        }
    }

    #[test]
    fn lists_parse_as_kafka_writes_them() {
        let ls = parse_list("PLAINTEXT://:9092, external://[::1]:9094").unwrap();
        assert_eq!(ls[0].bind_address(), "0.0.0.0:9092");
        assert_eq!(
            (ls[1].name.as_str(), ls[1].host.as_str(), ls[1].port),
            ("EXTERNAL", "::1", 9094)
        );
        for bad in [
            "PLAINTEXT:9092",
            "A://h",
            "A://h:99999",
            "A://h:1,A://h:2",
            "A B://h:1",
        ] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_flags_make_one_plaintext_listener() {
        let mut s = settings(None, None);
        s.legacy_advertise = Some("broker-0:19092");
        let l = resolve(&s).unwrap();
        assert_eq!(l.bind[0].bind_address(), "127.0.0.1:9092");
        assert_eq!(
            (l.advertised[0].host.as_str(), l.advertised[0].port),
            ("broker-0", 19092)
        );
        assert_eq!(l.inter_broker, "PLAINTEXT");
    }

    #[test]
    fn several_listeners_are_checked_against_each_other() {
        let l = resolve(&settings(
            Some("PLAINTEXT://:9092,EXTERNAL://:9094"),
            Some("PLAINTEXT://broker-0.svc:9092,EXTERNAL://203.0.113.7:31094"),
        ))
        .unwrap();
        assert_eq!(l.advertised.len(), 2);
        assert_eq!(l.inter_broker, "PLAINTEXT");
        let err = |s: ListenerSettings<'_>| resolve(&s).unwrap_err();
        assert!(err(settings(Some("OTHER://:1"), None)).contains("no security protocol"));
        let tls = resolve(&settings(Some("PLAINTEXT://:1,SECURE://:2"), None)).unwrap();
        assert_eq!(tls.protocols["SECURE"], "SSL");
        // A secured listener may be the inter-broker one (the only one here).
        assert_eq!(
            resolve(&settings(Some("SECURE://:1"), None))
                .unwrap()
                .inter_broker,
            "SECURE"
        );
        let mut s = settings(Some("PLAINTEXT://:1,S://:2"), None);
        s.protocol_map = "PLAINTEXT:PLAINTEXT,S:SASL_SSL";
        assert_eq!(resolve(&s).unwrap().protocols["S"], "SASL_SSL");
        s.inter_broker = Some("S");
        s.advertised = Some("PLAINTEXT://h:1,S://h:2");
        assert_eq!(resolve(&s).unwrap().inter_broker, "S");
        assert!(
            err(settings(Some("PLAINTEXT://:1"), Some("EXTERNAL://h:2")))
                .contains("not in listeners")
        );
        let mut s = settings(Some("PLAINTEXT://:1"), None);
        s.inter_broker = Some("EXTERNAL");
        assert!(err(s).contains("inter.broker.listener.name"));
        let mut s = settings(None, None);
        s.protocol_map = "PLAINTEXT:TLS";
        assert!(err(s).contains("unknown security protocol"));
    }
}
