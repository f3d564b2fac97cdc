//! `weir acl add|list|remove`: ACLs, with `kafka-acls.sh`'s flags
//! (`--topic`, `--group`, `--cluster`, `--transactional-id`,
//! `--resource-pattern-type`, `--allow-principal`, `--deny-principal`,
//! `--allow-host`, `--deny-host`, `--operation`, `--producer`,
//! `--consumer`) and its output, as subcommands instead of `--add`,
//! `--list` and `--remove`.
//!
//! The flags become bindings or filters here, before any broker is
//! contacted, so bad input fails fast and is unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use weir_client::acl::{
    AclBinding, AclFilter, CLUSTER_NAME, Operation, PatternFilter, PatternType, Permission,
    ResourcePattern, ResourceType, WILDCARD, validate_principal,
};

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct AclArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AclCommand {
    /// Add an ACL for every resource × principal × host × operation given.
    Add {
        #[command(flatten)]
        resources: ResourceArgs,
        #[command(flatten)]
        entries: EntryArgs,
    },
    /// List ACLs grouped by resource: those on the resources given
    /// (default pattern type any), or all of them.
    List {
        #[command(flatten)]
        resources: ResourceArgs,
        /// Only this principal's ACLs, e.g. User:alice (repeatable).
        #[arg(long = "principal", value_name = "PRINCIPAL")]
        principals: Vec<String>,
    },
    /// Remove the ACLs on the resources given that match the principals,
    /// hosts and operations given (every ACL on them if none is given).
    Remove {
        #[command(flatten)]
        resources: ResourceArgs,
        #[command(flatten)]
        entries: EntryArgs,
        /// Accepted for kafka-acls.sh scripts: weir never asks.
        #[arg(long)]
        force: bool,
    },
}

/// The resources an ACL command names.
#[derive(clap::Args, Debug, Default)]
struct ResourceArgs {
    /// A topic (repeatable; `*` for all topics).
    #[arg(long = "topic", value_name = "NAME")]
    topics: Vec<String>,
    /// A consumer group (repeatable; `*` for all groups).
    #[arg(long = "group", value_name = "NAME")]
    groups: Vec<String>,
    /// The cluster (always the literal `kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    /// A transactional id (repeatable; `*` for all).
    #[arg(long = "transactional-id", value_name = "NAME")]
    transactional_ids: Vec<String>,
    /// How resource names match: literal or prefixed (add; default
    /// literal), also any or match (list, default any; remove, default
    /// literal).
    #[arg(long = "resource-pattern-type", value_name = "TYPE")]
    pattern_type: Option<String>,
}

/// Who, from where, may or may not do what.
#[derive(clap::Args, Debug, Default)]
struct EntryArgs {
    /// A principal to allow, as Type:name, e.g. User:alice (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// A principal to deny, as Type:name (repeatable).
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// A host the allowed principals connect from (repeatable; add's
    /// default `*`).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// A host the denied principals connect from (repeatable; add's
    /// default `*`).
    #[arg(long = "deny-host", value_name = "HOST")]
    deny_hosts: Vec<String>,
    /// An operation, by Kafka's name in any case: All, Read, Write,
    /// Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens,
    /// TwoPhaseCommit (repeatable; add's default All).
    #[arg(long = "operation", value_name = "OP")]
    operations: Vec<String>,
    /// A producer's ACLs: Write, Describe and Create on the topics; Write
    /// and Describe on the transactional ids.
    #[arg(long)]
    producer: bool,
    /// A consumer's ACLs: Read and Describe on the topics, Read on the
    /// groups (needs --topic and --group).
    #[arg(long)]
    consumer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    List,
    Remove,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Add => "add",
            Mode::List => "list",
            Mode::Remove => "remove",
        }
    }
}

pub async fn run(args: AclArgs) -> anyhow::Result<()> {
    match args.command {
        AclCommand::Add { resources, entries } => {
            let bindings = add_bindings(&resources, &entries)?;
            let admin = args.client.admin().await?;
            let outcomes = admin.create_acls(&bindings).await?;
            let mut added = Vec::new();
            let mut failed = 0;
            for (b, outcome) in bindings.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => added.push(b.clone()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            print!("{}", format_acls("Adding ACLs for resource", &added));
            if failed > 0 {
                bail!(
                    "{failed} of {} ACLs could not be added (named above)",
                    bindings.len()
                );
            }
        }
        AclCommand::List {
            resources,
            principals,
        } => {
            let filters = list_filters(&resources, &principals)?;
            let admin = args.client.admin().await?;
            let mut found = BTreeSet::new();
            for f in &filters {
                found.extend(admin.describe_acls(f).await?);
            }
            let found: Vec<AclBinding> = found.into_iter().collect();
            print!("{}", format_acls("Current ACLs for resource", &found));
        }
        AclCommand::Remove {
            resources,
            entries,
            force: _,
        } => {
            let filters = remove_filters(&resources, &entries)?;
            let admin = args.client.admin().await?;
            let outcomes = admin.delete_acls(&filters).await?;
            let mut removed = Vec::new();
            let mut failed = 0;
            for outcome in outcomes {
                match outcome {
                    Ok(deleted) => removed.extend(deleted),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if removed.is_empty() && failed == 0 {
                println!("No ACLs matched: none removed.");
            }
            print!("{}", format_acls("Removed ACLs for resource", &removed));
            if failed > 0 {
                bail!(
                    "{failed} of {} ACL filters failed (named above)",
                    filters.len()
                );
            }
        }
    }
    Ok(())
}

/// `--resource-pattern-type`, with each command's default and choices.
fn pattern_filter(res: &ResourceArgs, mode: Mode) -> anyhow::Result<PatternFilter> {
    let Some(text) = &res.pattern_type else {
        return Ok(match mode {
            Mode::List => PatternFilter::Any,
            Mode::Add | Mode::Remove => PatternFilter::Exactly(PatternType::Literal),
        });
    };
    let parsed = match text.trim().to_ascii_lowercase().as_str() {
        "any" if mode != Mode::Add => Some(PatternFilter::Any),
        "match" if mode != Mode::Add => Some(PatternFilter::Match),
        _ => PatternType::parse(text).map(PatternFilter::Exactly),
    };
    parsed.ok_or_else(|| {
        let choices = match mode {
            Mode::Add => "literal or prefixed",
            Mode::List | Mode::Remove => "literal, prefixed, any or match",
        };
        anyhow::anyhow!(
            "--resource-pattern-type {text}: {} takes {choices}",
            mode.name()
        )
    })
}

/// The resources named, in flag order, each once.
fn resources(res: &ResourceArgs) -> Vec<(ResourceType, String)> {
    let mut out: Vec<(ResourceType, String)> = Vec::new();
    let named = res
        .topics
        .iter()
        .map(|t| (ResourceType::Topic, t.clone()))
        .chain(res.groups.iter().map(|g| (ResourceType::Group, g.clone())))
        .chain(
            res.cluster
                .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_string())),
        )
        .chain(
            res.transactional_ids
                .iter()
                .map(|t| (ResourceType::TransactionalId, t.clone())),
        );
    for r in named {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

fn require_resources(
    res: &ResourceArgs,
    mode: Mode,
) -> anyhow::Result<Vec<(ResourceType, String)>> {
    let named = resources(res);
    if named.is_empty() {
        bail!(
            "{} needs a resource: --topic, --group, --cluster or --transactional-id",
            mode.name()
        );
    }
    Ok(named)
}

/// The cluster resource is always literal, as in kafka-acls.sh.
fn pattern_for(rt: ResourceType, pattern: PatternFilter) -> PatternFilter {
    if rt == ResourceType::Cluster {
        PatternFilter::Exactly(PatternType::Literal)
    } else {
        pattern
    }
}

fn parse_principals(flag: &str, values: &[String]) -> anyhow::Result<Vec<String>> {
    values
        .iter()
        .map(|p| {
            validate_principal(p)
                .map(|()| p.clone())
                .map_err(|why| anyhow::anyhow!("{flag} {p}: {why}"))
        })
        .collect()
}

fn parse_operations(values: &[String]) -> anyhow::Result<Vec<Operation>> {
    let mut out = Vec::new();
    for v in values {
        let op = Operation::parse(v).ok_or_else(|| {
            let names: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
            anyhow::anyhow!(
                "--operation {v}: unknown operation (Kafka's are {})",
                names.join(", ")
            )
        })?;
        if !out.contains(&op) {
            out.push(op);
        }
    }
    Ok(out)
}

/// kafka-acls.sh's rules for --producer and --consumer; refuses a
/// resource they would give no ACL instead of ignoring it.
fn check_convenience(res: &ResourceArgs, e: &EntryArgs) -> anyhow::Result<()> {
    let which = match (e.producer, e.consumer) {
        (false, false) => return Ok(()),
        (true, false) => "--producer",
        (false, true) => "--consumer",
        (true, true) => "--producer/--consumer",
    };
    for (given, flag) in [
        (!e.operations.is_empty(), "--operation"),
        (!e.deny_principals.is_empty(), "--deny-principal"),
        (!e.deny_hosts.is_empty(), "--deny-host"),
    ] {
        if given {
            bail!(
                "{which} chooses the operations and only allows: it cannot be combined with {flag}"
            );
        }
    }
    if e.producer && res.topics.is_empty() {
        bail!("--producer needs --topic");
    }
    if e.consumer && (res.topics.is_empty() || res.groups.is_empty()) {
        bail!("--consumer needs --topic and --group");
    }
    if res.cluster {
        bail!("--cluster gets no ACL from {which}: use --operation instead");
    }
    if !e.consumer && !res.groups.is_empty() {
        bail!("--group gets no ACL from --producer (add --consumer, or use --operation)");
    }
    if !e.producer && !res.transactional_ids.is_empty() {
        bail!(
            "--transactional-id gets no ACL from --consumer (add --producer, or use --operation)"
        );
    }
    Ok(())
}

/// The operations `rt` gets: --producer/--consumer's, else `ops`.
fn operations_for(rt: ResourceType, e: &EntryArgs, ops: &[Operation]) -> Vec<Operation> {
    use Operation::*;
    if !(e.producer || e.consumer) {
        return ops.to_vec();
    }
    let mut out = Vec::new();
    let mut add = |wanted: &[Operation]| {
        for op in wanted {
            if !out.contains(op) {
                out.push(*op);
            }
        }
    };
    match rt {
        ResourceType::Topic => {
            if e.producer {
                add(&[Write, Describe, Create]);
            }
            if e.consumer {
                add(&[Read, Describe]);
            }
        }
        ResourceType::Group if e.consumer => add(&[Read]),
        ResourceType::TransactionalId if e.producer => add(&[Write, Describe]),
        _ => {}
    }
    out
}

/// `add`'s bindings: every resource × principal × host × operation, each
/// checked as Kafka would.
fn add_bindings(res: &ResourceArgs, e: &EntryArgs) -> anyhow::Result<Vec<AclBinding>> {
    let PatternFilter::Exactly(pattern_type) = pattern_filter(res, Mode::Add)? else {
        unreachable!("add parses only literal and prefixed");
    };
    check_convenience(res, e)?;
    let named = require_resources(res, Mode::Add)?;
    let ops = parse_operations(&e.operations)?;
    let allow = parse_principals("--allow-principal", &e.allow_principals)?;
    let deny = parse_principals("--deny-principal", &e.deny_principals)?;
    if allow.is_empty() && deny.is_empty() {
        bail!("add needs a principal: --allow-principal or --deny-principal (e.g. User:alice)");
    }
    let mut entries: Vec<(Permission, &String, &str)> = Vec::new();
    for (permission, principals, hosts, host_flag, principal_flag) in [
        (
            Permission::Allow,
            &allow,
            &e.allow_hosts,
            "--allow-host",
            "--allow-principal",
        ),
        (
            Permission::Deny,
            &deny,
            &e.deny_hosts,
            "--deny-host",
            "--deny-principal",
        ),
    ] {
        if principals.is_empty() && !hosts.is_empty() {
            bail!("{host_flag} {} needs {principal_flag}", hosts[0]);
        }
        let hosts: Vec<&str> = if hosts.is_empty() {
            vec![WILDCARD]
        } else {
            hosts.iter().map(String::as_str).collect()
        };
        for p in principals {
            for h in &hosts {
                entries.push((permission, p, h));
            }
        }
    }
    let mut out: Vec<AclBinding> = Vec::new();
    for (rt, name) in named {
        // The cluster resource is always literal, as in kafka-acls.sh.
        let pattern_type = if rt == ResourceType::Cluster {
            PatternType::Literal
        } else {
            pattern_type
        };
        let mut rt_ops = operations_for(rt, e, &ops);
        if rt_ops.is_empty() {
            rt_ops.push(Operation::All);
        }
        for op in &rt_ops {
            let applicable = Operation::applicable_to(rt);
            if *op != Operation::All && !applicable.contains(op) {
                let names: Vec<&str> = applicable.iter().map(|o| o.name()).collect();
                bail!(
                    "--operation {op}: not an operation on {rt} resources (those are ALL, {})",
                    names.join(", ")
                );
            }
        }
        let pattern = ResourcePattern {
            resource_type: rt,
            name,
            pattern_type,
        };
        for (permission, principal, host) in &entries {
            for op in &rt_ops {
                let b = AclBinding {
                    pattern: pattern.clone(),
                    principal: (*principal).clone(),
                    host: host.to_string(),
                    operation: *op,
                    permission: *permission,
                };
                b.validate()
                    .map_err(|why| anyhow::anyhow!("ACL {b}: {why}"))?;
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
    }
    Ok(out)
}

/// `remove`'s filters: one per resource × principal × host × operation
/// given, leaving open (`None`) whatever is not given.
fn remove_filters(res: &ResourceArgs, e: &EntryArgs) -> anyhow::Result<Vec<AclFilter>> {
    let pattern = pattern_filter(res, Mode::Remove)?;
    check_convenience(res, e)?;
    let named = require_resources(res, Mode::Remove)?;
    let ops = parse_operations(&e.operations)?;
    let allow = parse_principals("--allow-principal", &e.allow_principals)?;
    let deny = parse_principals("--deny-principal", &e.deny_principals)?;
    type Entry = (Option<Permission>, Option<String>, Option<String>);
    let mut entries: Vec<Entry> = Vec::new();
    for (permission, principals, hosts) in [
        (Permission::Allow, &allow, &e.allow_hosts),
        (Permission::Deny, &deny, &e.deny_hosts),
    ] {
        if principals.is_empty() && hosts.is_empty() {
            continue;
        }
        let principals: Vec<Option<String>> = if principals.is_empty() {
            vec![None]
        } else {
            principals.iter().cloned().map(Some).collect()
        };
        let hosts: Vec<Option<String>> = if hosts.is_empty() {
            vec![None]
        } else {
            hosts.iter().cloned().map(Some).collect()
        };
        for p in &principals {
            for h in &hosts {
                entries.push((Some(permission), p.clone(), h.clone()));
            }
        }
    }
    if entries.is_empty() {
        entries.push((None, None, None));
    }
    let mut out: Vec<AclFilter> = Vec::new();
    for (rt, name) in named {
        let pf = pattern_for(rt, pattern);
        let rt_ops: Vec<Option<Operation>> = match operations_for(rt, e, &ops) {
            v if v.is_empty() => vec![None],
            v => v.into_iter().map(Some).collect(),
        };
        for (permission, principal, host) in &entries {
            for op in &rt_ops {
                let filter = match (pf, permission, principal, host, op) {
                    (
                        PatternFilter::Exactly(pattern_type),
                        Some(permission),
                        Some(principal),
                        Some(host),
                        Some(operation),
                    ) => AclFilter::exactly(&AclBinding {
                        pattern: ResourcePattern {
                            resource_type: rt,
                            name: name.clone(),
                            pattern_type,
                        },
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission: *permission,
                    }),
                    _ => AclFilter {
                        resource_type: Some(rt),
                        name: Some(name.clone()),
                        pattern: pf,
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *op,
                        permission: *permission,
                    },
                };
                if !out.contains(&filter) {
                    out.push(filter);
                }
            }
        }
    }
    Ok(out)
}

/// `list`'s filters: one per resource × principal (every resource, or
/// every principal, when none is named).
fn list_filters(res: &ResourceArgs, principals: &[String]) -> anyhow::Result<Vec<AclFilter>> {
    let pattern = pattern_filter(res, Mode::List)?;
    let principals: Vec<Option<String>> = match parse_principals("--principal", principals)? {
        p if p.is_empty() => vec![None],
        p => p.into_iter().map(Some).collect(),
    };
    let named: Vec<(Option<ResourceType>, Option<String>, PatternFilter)> = match resources(res) {
        r if r.is_empty() => vec![(None, None, pattern)],
        r => r
            .into_iter()
            .map(|(rt, name)| (Some(rt), Some(name), pattern_for(rt, pattern)))
            .collect(),
    };
    let mut out = Vec::new();
    for (resource_type, name, pattern) in &named {
        for principal in &principals {
            out.push(AclFilter {
                resource_type: *resource_type,
                name: name.clone(),
                pattern: *pattern,
                principal: principal.clone(),
                ..AclFilter::any()
            });
        }
    }
    Ok(out)
}

/// kafka-acls.sh's listing: each resource under `heading`, then its ACLs
/// indented, a blank line after each resource. Empty for no bindings.
fn format_acls(heading: &str, bindings: &[AclBinding]) -> String {
    let mut by_resource: BTreeMap<&ResourcePattern, BTreeSet<&AclBinding>> = BTreeMap::new();
    for b in bindings {
        by_resource.entry(&b.pattern).or_default().insert(b);
    }
    let mut out = String::new();
    for (p, acls) in by_resource {
        out.push_str(&format!(
            "{heading} `ResourcePattern(resourceType={}, name={}, patternType={})`:\n",
            p.resource_type, p.name, p.pattern_type
        ));
        for b in acls {
            out.push_str(&format!(
                "\t(principal={}, host={}, operation={}, permissionType={})\n",
                b.principal, b.host, b.operation, b.permission
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AclCommand,
    }

    fn parse(line: &str) -> AclCommand {
        Cli::try_parse_from(std::iter::once("acl").chain(line.split_whitespace()))
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    fn add(line: &str) -> anyhow::Result<Vec<AclBinding>> {
        match parse(&format!("add {line}")) {
            AclCommand::Add { resources, entries } => add_bindings(&resources, &entries),
            _ => unreachable!(),
        }
    }

    fn remove(line: &str) -> anyhow::Result<Vec<AclFilter>> {
        match parse(&format!("remove {line}")) {
            AclCommand::Remove {
                resources, entries, ..
            } => remove_filters(&resources, &entries),
            _ => unreachable!(),
        }
    }

    fn list(line: &str) -> anyhow::Result<Vec<AclFilter>> {
        match parse(&format!("list {line}")) {
            AclCommand::List {
                resources,
                principals,
            } => list_filters(&resources, &principals),
            _ => unreachable!(),
        }
    }

    fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    fn acl(
        pattern: ResourcePattern,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn topic(name: &str) -> ResourcePattern {
        ResourcePattern::literal(ResourceType::Topic, name)
    }

    #[test]
    fn add_is_the_product_of_resources_principals_hosts_and_operations() {
        use Operation::*;
        let got = add(
            "--topic a --topic b --allow-principal User:x --allow-principal User:y \
             --operation read --operation WRITE --topic a",
        )
        .unwrap();
        let want: Vec<AclBinding> = ["a", "b"]
            .iter()
            .flat_map(|t| {
                ["User:x", "User:y"].into_iter().flat_map(move |p| {
                    [Read, Write]
                        .into_iter()
                        .map(move |op| acl(topic(t), p, "*", op, Permission::Allow))
                })
            })
            .collect();
        assert_eq!(got, want);

        // Default operation All; deny with its own hosts.
        let got =
            add("--group g --deny-principal User:m --deny-host 10.0.0.1 --deny-host 10.0.0.2")
                .unwrap();
        let g = ResourcePattern::literal(ResourceType::Group, "g");
        assert_eq!(
            got,
            vec![
                acl(g.clone(), "User:m", "10.0.0.1", All, Permission::Deny),
                acl(g, "User:m", "10.0.0.2", All, Permission::Deny),
            ]
        );
    }

    #[test]
    fn add_prefixed_keeps_the_cluster_literal() {
        let got = add(
            "--topic ord --cluster --transactional-id app- --resource-pattern-type Prefixed \
             --allow-principal User:a --operation Describe",
        )
        .unwrap();
        let patterns: Vec<&ResourcePattern> = got.iter().map(|b| &b.pattern).collect();
        assert_eq!(
            patterns,
            vec![
                &ResourcePattern::prefixed(ResourceType::Topic, "ord"),
                &ResourcePattern::literal(ResourceType::Cluster, CLUSTER_NAME),
                &ResourcePattern::prefixed(ResourceType::TransactionalId, "app-"),
            ]
        );
    }

    #[test]
    fn producer_and_consumer_expand_as_kafka_acls_does() {
        use Operation::*;
        let ops = |bindings: &[AclBinding], rt: ResourceType| -> Vec<Operation> {
            bindings
                .iter()
                .filter(|b| b.pattern.resource_type == rt)
                .map(|b| b.operation)
                .collect()
        };
        let p = add("--topic t --transactional-id tx --producer --allow-principal User:p").unwrap();
        assert_eq!(ops(&p, ResourceType::Topic), vec![Write, Describe, Create]);
        assert_eq!(
            ops(&p, ResourceType::TransactionalId),
            vec![Write, Describe]
        );
        assert!(
            p.iter()
                .all(|b| b.host == "*" && b.permission == Permission::Allow)
        );

        let c = add("--topic t --group g --consumer --allow-principal User:c").unwrap();
        assert_eq!(ops(&c, ResourceType::Topic), vec![Read, Describe]);
        assert_eq!(ops(&c, ResourceType::Group), vec![Read]);

        let both =
            add("--topic t --group g --producer --consumer --allow-principal User:b").unwrap();
        assert_eq!(
            ops(&both, ResourceType::Topic),
            vec![Write, Describe, Create, Read]
        );
        assert_eq!(ops(&both, ResourceType::Group), vec![Read]);
    }

    #[test]
    fn bad_input_names_the_flag_and_value() {
        let e = err(add("--topic t --allow-principal User:a --operation Fly"));
        assert!(
            e.contains("--operation Fly") && e.contains("IDEMPOTENT_WRITE"),
            "{e}"
        );
        let e = err(add("--topic t --consumer --allow-principal User:a"));
        assert!(e.contains("--consumer needs --topic and --group"), "{e}");
        let e = err(add("--topic t --allow-principal alice"));
        assert!(
            e.contains("--allow-principal alice") && e.contains("Type:name"),
            "{e}"
        );
        let e = err(list("--principal bob"));
        assert!(e.contains("--principal bob"), "{e}");
        let e = err(add("--topic t --operation Read"));
        assert!(e.contains("--allow-principal or --deny-principal"), "{e}");
        let e = err(add("--allow-principal User:a"));
        assert!(e.contains("add needs a resource: --topic"), "{e}");
        let e = err(add(
            "--topic t --allow-principal User:a --resource-pattern-type match",
        ));
        assert!(
            e.contains("--resource-pattern-type match") && e.contains("literal or prefixed"),
            "{e}"
        );
        let e = err(list("--resource-pattern-type fuzzy"));
        assert!(e.contains("literal, prefixed, any or match"), "{e}");
        let e = err(add("--cluster --allow-principal User:a --operation Read"));
        assert!(
            e.contains("--operation READ: not an operation on CLUSTER"),
            "{e}"
        );
        let e = err(add(
            "--topic t --allow-principal User:a --deny-host 1.2.3.4",
        ));
        assert!(
            e.contains("--deny-host 1.2.3.4 needs --deny-principal"),
            "{e}"
        );
        let e = err(add(
            "--topic t --producer --operation Read --allow-principal User:a",
        ));
        assert!(e.contains("--producer") && e.contains("--operation"), "{e}");
        let e = err(add(
            "--topic t --group g --producer --allow-principal User:a",
        ));
        assert!(e.contains("--group gets no ACL"), "{e}");
        let e = err(add("--topic= --allow-principal User:a"));
        assert!(e.contains("Invalid empty resource name"), "{e}");
        let e = err(remove("--allow-principal User:a"));
        assert!(e.contains("remove needs a resource"), "{e}");
    }

    #[test]
    fn remove_leaves_open_what_is_not_given() {
        let filters = remove("--topic t --force").unwrap();
        assert_eq!(
            filters,
            vec![AclFilter {
                resource_type: Some(ResourceType::Topic),
                name: Some("t".into()),
                pattern: PatternFilter::Exactly(PatternType::Literal),
                ..AclFilter::any()
            }]
        );

        let filters =
            remove("--topic t --allow-principal User:a --allow-host * --operation Read").unwrap();
        assert_eq!(
            filters,
            vec![AclFilter::exactly(&acl(
                topic("t"),
                "User:a",
                "*",
                Operation::Read,
                Permission::Allow
            ))]
        );

        let filters =
            remove("--topic t --deny-principal User:a --operation Write --operation Read").unwrap();
        assert_eq!(filters.len(), 2);
        for (f, op) in filters.iter().zip([Operation::Write, Operation::Read]) {
            assert_eq!(f.principal.as_deref(), Some("User:a"));
            assert_eq!(f.permission, Some(Permission::Deny));
            assert_eq!(f.host, None);
            assert_eq!(f.operation, Some(op));
        }

        let filters = remove("--topic ord --resource-pattern-type match --operation Read").unwrap();
        assert_eq!(filters[0].pattern, PatternFilter::Match);
        assert_eq!(filters[0].principal, None);
        assert_eq!(filters[0].permission, None);
        assert!(filters[0].matches(&acl(
            ResourcePattern::prefixed(ResourceType::Topic, "o"),
            "User:z",
            "h",
            Operation::Read,
            Permission::Deny
        )));

        let filters = remove("--topic t --group g --consumer --allow-principal User:c").unwrap();
        let ops: Vec<_> = filters
            .iter()
            .map(|f| (f.resource_type, f.operation))
            .collect();
        assert_eq!(
            ops,
            vec![
                (Some(ResourceType::Topic), Some(Operation::Read)),
                (Some(ResourceType::Topic), Some(Operation::Describe)),
                (Some(ResourceType::Group), Some(Operation::Read)),
            ]
        );
    }

    #[test]
    fn list_filters_default_to_any_pattern() {
        assert_eq!(list("").unwrap(), vec![AclFilter::any()]);
        assert_eq!(
            list("--resource-pattern-type prefixed").unwrap(),
            vec![AclFilter {
                pattern: PatternFilter::Exactly(PatternType::Prefixed),
                ..AclFilter::any()
            }]
        );
        let filters = list("--topic t --cluster --principal User:a --principal User:b").unwrap();
        assert_eq!(filters.len(), 4);
        assert_eq!(filters[0].pattern, PatternFilter::Any);
        assert_eq!(filters[0].name.as_deref(), Some("t"));
        assert_eq!(filters[1].principal.as_deref(), Some("User:b"));
        assert_eq!(filters[2].resource_type, Some(ResourceType::Cluster));
        assert_eq!(
            filters[2].pattern,
            PatternFilter::Exactly(PatternType::Literal)
        );
    }

    #[test]
    fn listing_is_grouped_by_resource_like_kafka_acls() {
        let bindings = vec![
            acl(
                topic("orders"),
                "User:bob",
                "*",
                Operation::Write,
                Permission::Allow,
            ),
            acl(
                ResourcePattern::literal(ResourceType::Group, "app"),
                "User:alice",
                "*",
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                topic("orders"),
                "User:alice",
                "*",
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                topic("orders"),
                "User:alice",
                "*",
                Operation::Read,
                Permission::Allow,
            ),
        ];
        assert_eq!(
            format_acls("Current ACLs for resource", &bindings),
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:\n\
             \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
             \t(principal=User:bob, host=*, operation=WRITE, permissionType=ALLOW)\n\
             \n\
             Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=app, patternType=LITERAL)`:\n\
             \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
             \n"
        );
        assert_eq!(format_acls("x", &[]), "");
    }
}
