//! Table-driven checks of Kafka's documented ACL semantics.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use weir_client::acl::{AclBinding, Operation, Permission, ResourcePattern, ResourceType};

use super::*;

const LOCAL: &str = "127.0.0.1";

/// `ALLOW|DENY principal op TYPE:LITERAL|PREFIXED:name [host]`
fn acl(text: &str) -> AclBinding {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let permission = Permission::parse(parts[0]).unwrap();
    let principal = parts[1].to_owned();
    let operation = Operation::parse(parts[2]).unwrap();
    let mut resource = parts[3].splitn(3, ':');
    let rt = ResourceType::parse(resource.next().unwrap()).unwrap();
    let kind = resource.next().unwrap();
    let name = resource.next().unwrap();
    let pattern = match kind {
        "LITERAL" => ResourcePattern::literal(rt, name),
        _ => ResourcePattern::prefixed(rt, name),
    };
    AclBinding {
        pattern,
        principal,
        host: parts.get(4).copied().unwrap_or("*").to_owned(),
        operation,
        permission,
    }
}

fn index(acls: &[&str]) -> AclIndex {
    let set: BTreeSet<AclBinding> = acls.iter().map(|a| acl(a)).collect();
    AclIndex::build(&Arc::new(set))
}

fn config(allow_if_no_acl: bool) -> AuthorizerConfig {
    AuthorizerConfig {
        enabled: true,
        super_users: ["User:admin".to_owned()].into(),
        allow_if_no_acl,
    }
}

/// `principal op TYPE:name [host]`
fn asks(index: &AclIndex, config: &AuthorizerConfig, question: &str) -> bool {
    let parts: Vec<&str> = question.split_whitespace().collect();
    let (rt, name) = parts[2].split_once(':').unwrap();
    let host: IpAddr = parts.get(3).copied().unwrap_or(LOCAL).parse().unwrap();
    decide(
        config,
        index,
        parts[0],
        host,
        Operation::parse(parts[1]).unwrap(),
        ResourceType::parse(rt).unwrap(),
        name,
    )
}

#[test]
fn kafkas_rules_hold() {
    // (ACLs, allow.everyone.if.no.acl.found, question, allowed, why)
    let cases: &[(&[&str], bool, &str, bool, &str)] = &[
        (
            &[],
            false,
            "User:alice Read TOPIC:t",
            false,
            "no ACL: denied by default",
        ),
        (
            &[],
            true,
            "User:alice Read TOPIC:t",
            true,
            "no ACL: allowed when configured",
        ),
        (
            &["DENY User:* All TOPIC:LITERAL:t"],
            false,
            "User:admin Write TOPIC:t",
            true,
            "a super user passes every ACL",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            false,
            "User:alice Read TOPIC:t",
            true,
            "literal allow",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            false,
            "User:alice Write TOPIC:t",
            false,
            "another operation",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            false,
            "User:bob Read TOPIC:t",
            false,
            "another principal",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            true,
            "User:bob Read TOPIC:t",
            false,
            "the resource has ACLs, so the no-ACL rule does not apply",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            false,
            "User:alice Read TOPIC:u",
            false,
            "another topic",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t"],
            false,
            "User:alice Describe TOPIC:t",
            true,
            "Read implies Describe",
        ),
        (
            &["ALLOW User:alice Write TOPIC:LITERAL:t"],
            false,
            "User:alice Describe TOPIC:t",
            true,
            "Write implies Describe",
        ),
        (
            &["ALLOW User:alice Delete TOPIC:LITERAL:t"],
            false,
            "User:alice Describe TOPIC:t",
            true,
            "Delete implies Describe",
        ),
        (
            &["ALLOW User:alice Alter TOPIC:LITERAL:t"],
            false,
            "User:alice Describe TOPIC:t",
            true,
            "Alter implies Describe",
        ),
        (
            &["ALLOW User:alice AlterConfigs TOPIC:LITERAL:t"],
            false,
            "User:alice DescribeConfigs TOPIC:t",
            true,
            "AlterConfigs implies DescribeConfigs",
        ),
        (
            &["ALLOW User:alice Describe TOPIC:LITERAL:t"],
            false,
            "User:alice Read TOPIC:t",
            false,
            "Describe implies nothing",
        ),
        (
            &["ALLOW User:alice Create TOPIC:LITERAL:t"],
            false,
            "User:alice Describe TOPIC:t",
            false,
            "Create does not imply Describe",
        ),
        (
            &["ALLOW User:alice All TOPIC:LITERAL:t"],
            false,
            "User:alice Delete TOPIC:t",
            true,
            "All grants everything",
        ),
        (
            &[
                "ALLOW User:* All TOPIC:LITERAL:t",
                "DENY User:bob Write TOPIC:LITERAL:t",
            ],
            false,
            "User:bob Write TOPIC:t",
            false,
            "deny wins over allow",
        ),
        (
            &[
                "ALLOW User:* All TOPIC:LITERAL:t",
                "DENY User:bob Write TOPIC:LITERAL:t",
            ],
            false,
            "User:bob Read TOPIC:t",
            true,
            "a deny of one operation leaves the others",
        ),
        (
            &[
                "ALLOW User:alice Read TOPIC:LITERAL:t",
                "DENY User:alice Read TOPIC:LITERAL:t",
            ],
            false,
            "User:alice Describe TOPIC:t",
            true,
            "denying Read does not deny the Describe it implied (as in Kafka)",
        ),
        (
            &[
                "ALLOW User:alice Read TOPIC:LITERAL:t",
                "DENY User:alice All TOPIC:LITERAL:t",
            ],
            false,
            "User:alice Describe TOPIC:t",
            false,
            "denying All denies Describe",
        ),
        (
            &["ALLOW User:alice Read TOPIC:PREFIXED:orders-"],
            false,
            "User:alice Read TOPIC:orders-eu",
            true,
            "prefix covers",
        ),
        (
            &["ALLOW User:alice Read TOPIC:PREFIXED:orders-"],
            false,
            "User:alice Read TOPIC:orders-",
            true,
            "a prefix covers itself",
        ),
        (
            &["ALLOW User:alice Read TOPIC:PREFIXED:orders-"],
            false,
            "User:alice Read TOPIC:orders",
            false,
            "shorter than the prefix",
        ),
        (
            &["ALLOW User:alice Read TOPIC:PREFIXED:orders-"],
            true,
            "User:alice Read TOPIC:payments",
            true,
            "no ACL applies to payments",
        ),
        (
            &[
                "ALLOW User:alice Read TOPIC:LITERAL:orders-eu",
                "DENY User:alice Read TOPIC:PREFIXED:orders-",
            ],
            false,
            "User:alice Read TOPIC:orders-eu",
            false,
            "a prefixed deny beats a literal allow",
        ),
        (
            &[
                "ALLOW User:alice Read TOPIC:PREFIXED:o",
                "ALLOW User:bob Read TOPIC:PREFIXED:orders",
            ],
            false,
            "User:alice Read TOPIC:orders",
            true,
            "prefixes of several lengths are all consulted",
        ),
        (
            &["ALLOW User:alice Write TOPIC:LITERAL:*"],
            false,
            "User:alice Write TOPIC:anything",
            true,
            "the literal wildcard covers every name",
        ),
        (
            &["ALLOW User:* Read TOPIC:LITERAL:t"],
            false,
            "User:carol Read TOPIC:t",
            true,
            "User:* covers every user",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t 10.0.0.1"],
            false,
            "User:alice Read TOPIC:t",
            false,
            "another host",
        ),
        (
            &["ALLOW User:alice Read TOPIC:LITERAL:t 10.0.0.1"],
            false,
            "User:alice Read TOPIC:t 10.0.0.1",
            true,
            "the named host",
        ),
        (
            &["ALLOW User:alice Read GROUP:LITERAL:t"],
            false,
            "User:alice Read TOPIC:t",
            false,
            "resource types do not mix",
        ),
        (
            &["ALLOW User:alice IdempotentWrite CLUSTER:LITERAL:kafka-cluster"],
            false,
            "User:alice IdempotentWrite CLUSTER:kafka-cluster",
            true,
            "cluster ACL",
        ),
        (
            &["ALLOW User:alice Write TRANSACTIONAL_ID:PREFIXED:app-"],
            false,
            "User:alice Write TRANSACTIONAL_ID:app-1",
            true,
            "transactional id prefix",
        ),
        (
            &["ALLOW User:alice Read TOPIC:PREFIXED:é"],
            false,
            "User:alice Read TOPIC:aé",
            false,
            "a prefix length inside a character is skipped",
        ),
    ];
    for (acls, allow_if_no_acl, question, allowed, why) in cases {
        let index = index(acls);
        assert_eq!(
            asks(&index, &config(*allow_if_no_acl), question),
            *allowed,
            "{why}: {question} with {acls:?}"
        );
    }
}

#[test]
fn some_resource_of_a_type_is_found_unless_denied_wholesale() {
    let any = |acls: &[&str], principal: &str| {
        decide_any(
            &config(false),
            &index(acls),
            principal,
            LOCAL.parse().unwrap(),
            Operation::Write,
            ResourceType::Topic,
        )
    };
    assert!(any(
        &["ALLOW User:alice Write TOPIC:LITERAL:t"],
        "User:alice"
    ));
    assert!(any(
        &["ALLOW User:alice All TOPIC:PREFIXED:a"],
        "User:alice"
    ));
    assert!(!any(
        &["ALLOW User:alice Read TOPIC:LITERAL:t"],
        "User:alice"
    ));
    assert!(!any(
        &["ALLOW User:alice Write TOPIC:LITERAL:t"],
        "User:bob"
    ));
    assert!(!any(
        &[
            "ALLOW User:alice Write TOPIC:LITERAL:t",
            "DENY User:alice Write TOPIC:LITERAL:*"
        ],
        "User:alice"
    ));
    assert!(!any(
        &[
            "ALLOW User:alice Write TOPIC:PREFIXED:ab",
            "DENY User:* Write TOPIC:PREFIXED:a"
        ],
        "User:alice"
    ));
    assert!(any(
        &[
            "ALLOW User:alice Write TOPIC:LITERAL:x",
            "DENY User:alice Write TOPIC:PREFIXED:y"
        ],
        "User:alice"
    ));
    assert!(any(&[], "User:admin"), "super user");
}

#[test]
fn authorized_operations_name_each_allowed_one() {
    let bits = authorized_operations(
        &config(false),
        &index(&["ALLOW User:alice Read TOPIC:LITERAL:t"]),
        "User:alice",
        LOCAL.parse().unwrap(),
        ResourceType::Topic,
        "t",
    );
    assert_eq!(
        bits,
        1 << Operation::Read.code() | 1 << Operation::Describe.code()
    );
}

#[test]
fn the_index_follows_the_acl_set() {
    let authorizer = Authorizer::new(config(false));
    let host: IpAddr = LOCAL.parse().unwrap();
    let empty = Arc::new(BTreeSet::new());
    assert!(
        !authorizer
            .access(|| empty.clone(), "User:alice", host)
            .topic(Operation::Read, "t")
    );
    let granted: Arc<BTreeSet<AclBinding>> = Arc::new(
        [acl("ALLOW User:alice Read TOPIC:LITERAL:t")]
            .into_iter()
            .collect(),
    );
    assert!(
        authorizer
            .access(|| granted.clone(), "User:alice", host)
            .topic(Operation::Read, "t")
    );
    assert!(
        !authorizer
            .access(|| empty.clone(), "User:alice", host)
            .topic(Operation::Read, "t")
    );

    let off = Authorizer::new(AuthorizerConfig::default());
    assert!(
        off.access(|| empty.clone(), "User:alice", host)
            .topic(Operation::Write, "t")
    );
}

#[test]
fn settings_parse_or_name_the_problem() {
    assert_eq!(parse_authorizer_class(""), Ok(false));
    assert_eq!(parse_authorizer_class(AUTHORIZER_CLASS_NAMES[0]), Ok(true));
    assert!(
        parse_authorizer_class("com.example.Mine")
            .unwrap_err()
            .contains("StandardAuthorizer")
    );
    assert_eq!(
        parse_super_users("User:a; User:b;").unwrap(),
        ["User:a".to_owned(), "User:b".to_owned()].into()
    );
    assert!(parse_super_users("User:a;b").unwrap_err().contains("\"b\""));
}
