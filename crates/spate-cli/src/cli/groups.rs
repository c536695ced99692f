//! `spate groups`: list, describe, delete consumer groups and reset their committed offsets,
//! like `kafka-consumer-groups.sh`, on rdkafka (group listing via ListGroups, offsets via a
//! consumer carrying the group's `group.id`, deletion via the AdminClient). Who is in a group
//! and what each member owns comes from [`super::group_members`]: DescribeGroups v5 at the
//! coordinator (with `group.instance.id`, which librdkafka's listing drops) or
//! ConsumerGroupDescribe for a consumer-protocol (KIP-848) group.
//!
//! `reset-offsets` follows Kafka's tool: it only works on a group with no active members, and
//! without `--execute` it prints the plan and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::{ArgGroup, Args, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use spate_client::config::{partition_count, CliContext, ClientArgs};

use super::group_members::{
    assignment_column, describe_consumer_group, describe_group, GroupState, MemberRow,
};

type GroupConsumer = BaseConsumer<CliContext>;

/// `spate groups <action>`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    action: GroupsAction,
}

/// The subcommands of `spate groups`, after kafka-consumer-groups.sh.
#[derive(Subcommand, Debug)]
pub enum GroupsAction {
    /// List consumer groups, one per line.
    List(ListArgs),
    /// Show a group's members, committed offsets, log end offsets and lag.
    Describe(DescribeArgs),
    /// Delete a group with no active members (and its committed offsets).
    Delete(DeleteArgs),
    /// Reset a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
}

/// `spate groups list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Also print each group's state.
    #[arg(long)]
    state: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate groups describe`: which group.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The group id.
    #[arg(value_name = "GROUP")]
    group: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate groups delete`: which group.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The group id.
    #[arg(value_name = "GROUP")]
    group: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate groups reset-offsets`: which group, topic and target offsets.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
pub struct ResetArgs {
    /// The group id.
    #[arg(value_name = "GROUP")]
    group: String,
    /// Topic whose offsets to reset (repeatable).
    #[arg(long, value_name = "TOPIC", required_unless_present = "all_topics")]
    topic: Vec<String>,
    /// Reset every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topic")]
    all_topics: bool,
    /// Reset to the earliest offset still in the log.
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// Reset to this offset (clamped to the log's range, as Kafka does).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Reset to the first offset at or after this time: YYYY-MM-DDTHH:MM:SS[.sss][Z|±HH:MM]
    /// (UTC when no zone is given).
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// Apply the reset. Without it the plan is only printed (a dry run, Kafka's default).
    #[arg(long)]
    execute: bool,
    /// Only print the plan (the default; accepted for compatibility with Kafka's tool).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `spate groups` (like kafka-consumer-groups.sh).
pub fn run(args: GroupsArgs) -> anyhow::Result<()> {
    match args.action {
        GroupsAction::List(a) => list(a),
        GroupsAction::Describe(a) => describe(a),
        GroupsAction::Delete(a) => delete(a),
        GroupsAction::ResetOffsets(a) => reset_offsets(a),
    }
}

/// A consumer that carries `group.id` but never subscribes: it reads and writes the group's
/// committed offsets without joining it.
fn group_consumer(client: &ClientArgs, group: &str) -> anyhow::Result<GroupConsumer> {
    Ok(client.create(&[
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
    ])?)
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let consumer: GroupConsumer = args.client.create(&[])?;
    let list = consumer
        .fetch_group_list(None, args.client.request_timeout())
        .map_err(|e| args.client.unreachable(e))?;
    // librdkafka describes listed groups with DescribeGroups, which reports a consumer-protocol
    // (KIP-848) group as Dead: ask ConsumerGroupDescribe for those.
    let mut groups: Vec<(String, String)> = list
        .groups()
        .iter()
        .map(|g| {
            let state = match g.state() {
                "Dead" => describe_consumer_group(&args.client, g.name())
                    .map_or_else(|| "Dead".to_owned(), |c| c.state),
                s => s.to_owned(),
            };
            (g.name().to_owned(), state)
        })
        .collect();
    groups.sort();
    if args.state {
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|(g, s)| vec![g.clone(), s.clone()])
            .collect();
        print_table(&["GROUP", "STATE"], &rows);
    } else {
        for (g, _) in groups {
            println!("{g}");
        }
    }
    Ok(())
}

/// Every partition of every topic in the cluster; offsets are asked for all of them because
/// OffsetFetch through librdkafka needs explicit partitions.
fn all_partitions(
    consumer: &GroupConsumer,
    client: &ClientArgs,
) -> anyhow::Result<TopicPartitionList> {
    let metadata = client.metadata(consumer.client(), None)?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    Ok(tpl)
}

fn committed(
    consumer: &GroupConsumer,
    client: &ClientArgs,
    tpl: TopicPartitionList,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    if tpl.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let got = consumer
        .committed_offsets(tpl, client.request_timeout())
        .context("fetching committed offsets")?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let consumer = group_consumer(&args.client, &args.group)?;
    let state = describe_group(&consumer, &args.client, &args.group)?;
    let offsets = committed(
        &consumer,
        &args.client,
        all_partitions(&consumer, &args.client)?,
    )?;
    if state.state == "Dead" && offsets.is_empty() {
        bail!("consumer group {:?} does not exist", args.group);
    }
    let rows = partition_rows(&consumer, &args, &state, &offsets)?;
    print_group_line(&args.group, &state);
    println!();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    if !state.members.is_empty() {
        println!();
        print_members(&args.group, &state);
    }
    Ok(())
}

/// One row per partition the group has an offset for or a member owns: committed offset, log
/// end offset, lag and owner, as kafka-consumer-groups.sh `--describe` prints them.
fn partition_rows(
    consumer: &GroupConsumer,
    args: &DescribeArgs,
    state: &GroupState,
    offsets: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<Vec<Vec<String>>> {
    let owner: BTreeMap<(String, i32), &MemberRow> = state
        .members
        .iter()
        .flat_map(|m| m.partitions.iter().map(move |tp| (tp.clone(), m)))
        .collect();
    let partitions: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let mut rows = Vec::new();
    for (topic, partition) in &partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, args.client.request_timeout())
            .with_context(|| format!("log end offset of {topic}-{partition}"))?;
        let current = offsets.get(&(topic.clone(), *partition));
        let lag = current.map(|c| (high - c).max(0));
        let member = owner.get(&(topic.clone(), *partition));
        rows.push(vec![
            args.group.clone(),
            topic.clone(),
            partition.to_string(),
            current.map_or("-".into(), |c| c.to_string()),
            high.to_string(),
            lag.map_or("-".into(), |l| l.to_string()),
            member.map_or("-".into(), |m| m.id.clone()),
            member.map_or("-".into(), |m| m.host.clone()),
            member.map_or("-".into(), |m| m.client_id.clone()),
        ]);
    }
    Ok(rows)
}

/// The line above the table: how many active members, the state, protocol and assignor.
fn print_group_line(group: &str, state: &GroupState) {
    if state.members.is_empty() {
        println!(
            "Consumer group '{}' has no active members (state: {}).",
            group, state.state
        );
        return;
    }
    let kind = match state.group_epoch {
        Some(epoch) => format!("protocol: consumer, group epoch: {epoch}"),
        None => "protocol: classic".to_owned(),
    };
    println!(
        "Consumer group '{}' has {} active member(s) (state: {}, {kind}, assignor: {}).",
        group,
        state.members.len(),
        state.state,
        if state.protocol.is_empty() {
            "-"
        } else {
            &state.protocol
        }
    );
}

/// The members table, as kafka-consumer-groups.sh `--members --verbose` prints it: id,
/// `group.instance.id` (when any member is static), host, client id, partition count and the
/// assigned partitions; plus the member epoch of a consumer-protocol group.
fn print_members(group: &str, state: &GroupState) {
    let with_instance = state.members.iter().any(|m| m.instance_id.is_some());
    let with_epoch = state.group_epoch.is_some();
    let row = |m: &MemberRow| {
        let mut row = vec![group.to_owned(), m.id.clone()];
        if with_instance {
            row.push(m.instance_id.clone().unwrap_or_else(|| "-".into()));
        }
        row.extend([
            m.host.clone(),
            m.client_id.clone(),
            m.partitions.len().to_string(),
            assignment_column(&m.partitions),
        ]);
        if with_epoch {
            row.push(m.epoch.map_or("-".into(), |e| e.to_string()));
        }
        row
    };
    let mut header = vec!["GROUP", "CONSUMER-ID"];
    if with_instance {
        header.push("GROUP-INSTANCE-ID");
    }
    header.extend(["HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]);
    if with_epoch {
        header.push("MEMBER-EPOCH");
    }
    let mut members: Vec<&MemberRow> = state.members.iter().collect();
    members.sort_by(|a, b| (&a.instance_id, &a.id).cmp(&(&b.instance_id, &b.id)));
    let rows: Vec<Vec<String>> = members.into_iter().map(row).collect();
    print_table(&header, &rows);
}

fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let admin: AdminClient<CliContext> = args.client.create(&[])?;
    let options = AdminOptions::new()
        .request_timeout(Some(args.client.request_timeout()))
        .operation_timeout(Some(args.client.request_timeout()));
    let deadline = args.client.request_timeout() + Duration::from_secs(5);
    let results = runtime
        .block_on(async {
            tokio::time::timeout(deadline, admin.delete_groups(&[&args.group], &options)).await
        })
        .map_err(|_| anyhow!("deleting group {:?} timed out", args.group))?
        .map_err(|e| args.client.unreachable(e))?;
    for result in results {
        match result {
            Ok(group) => println!("Deletion of requested consumer group '{group}' was successful."),
            Err((group, code)) => bail!(
                "deletion of consumer group '{group}' failed: {}",
                describe_error(code)
            ),
        }
    }
    Ok(())
}

fn describe_error(code: rdkafka::types::RDKafkaErrorCode) -> String {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        C::NonEmptyGroup => "the group is not empty (it has active members)".into(),
        C::GroupIdNotFound => "the group does not exist".into(),
        other => other.to_string(),
    }
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

/// The target `reset-offsets` was given (`--to-earliest`, `--to-latest`, `--to-offset` or
/// `--to-datetime`).
fn reset_target(args: &ResetArgs) -> anyhow::Result<ResetTarget> {
    Ok(if args.to_earliest {
        ResetTarget::Earliest
    } else if args.to_latest {
        ResetTarget::Latest
    } else if let Some(o) = args.to_offset {
        ResetTarget::Offset(o)
    } else if let Some(dt) = &args.to_datetime {
        ResetTarget::Timestamp(parse_datetime(dt)?)
    } else {
        bail!("one of --to-earliest, --to-latest, --to-offset, --to-datetime is required");
    })
}

/// The topics to reset: those given, or with `--all-topics` every topic the group has an
/// offset for.
fn reset_topics(consumer: &GroupConsumer, args: &ResetArgs) -> anyhow::Result<Vec<String>> {
    if !args.all_topics {
        return Ok(args.topic.clone());
    }
    let offsets = committed(
        consumer,
        &args.client,
        all_partitions(consumer, &args.client)?,
    )?;
    let topics: BTreeSet<String> = offsets.into_keys().map(|(t, _)| t).collect();
    if topics.is_empty() {
        bail!("group '{}' has no committed offsets to reset", args.group);
    }
    Ok(topics.into_iter().collect())
}

/// The new offset of each of `topic`'s `count` partitions: the earliest or latest offset, the
/// given offset clamped into the log, or the first offset at or after a time (the log end
/// when there is none, as Kafka's tool does).
fn plan_topic(
    consumer: &GroupConsumer,
    topic: &str,
    count: i32,
    target: ResetTarget,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    let mut plan = Vec::new();
    let mut by_time = TopicPartitionList::new();
    for p in 0..count {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("offsets of {topic}-{p}"))?;
        let new = match target {
            ResetTarget::Earliest => low,
            ResetTarget::Latest => high,
            ResetTarget::Offset(o) => o.clamp(low, high),
            ResetTarget::Timestamp(ts) => {
                by_time.add_partition_offset(topic, p, Offset::Offset(ts))?;
                continue;
            }
        };
        plan.push((topic.to_owned(), p, new));
    }
    if by_time.count() > 0 {
        let found = consumer
            .offsets_for_times(by_time, timeout)
            .context("looking up offsets by time")?;
        for e in found.elements() {
            // No record at or after the time: the log end, as Kafka's tool does.
            let new = match e.offset() {
                Offset::Offset(o) => o,
                _ => {
                    consumer
                        .fetch_watermarks(topic, e.partition(), timeout)
                        .with_context(|| format!("offsets of {topic}-{}", e.partition()))?
                        .1
                }
            };
            plan.push((topic.to_owned(), e.partition(), new));
        }
    }
    Ok(plan)
}

fn reset_offsets(args: ResetArgs) -> anyhow::Result<()> {
    let target = reset_target(&args)?;
    let consumer = group_consumer(&args.client, &args.group)?;
    let state = describe_group(&consumer, &args.client, &args.group)?;
    if !state.members.is_empty() || !matches!(state.state.as_str(), "Empty" | "Dead") {
        bail!(
            "assignments can only be reset if the group '{}' is inactive, but the current state is {} \
             with {} active member(s); stop its consumers first",
            args.group,
            state.state,
            state.members.len()
        );
    }
    let metadata = args.client.metadata(consumer.client(), None)?;
    let timeout = args.client.request_timeout();
    let mut plan: Vec<(String, i32, i64)> = Vec::new();
    for topic in &reset_topics(&consumer, &args)? {
        let count = partition_count(&metadata, topic)?;
        plan.extend(plan_topic(&consumer, topic, count, target, timeout)?);
    }
    plan.sort();
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|(t, p, o)| vec![args.group.clone(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if !args.execute {
        println!();
        println!("Dry run: nothing was changed. Re-run with --execute to apply this plan.");
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in &plan {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| anyhow!("committing the new offsets failed: {e}"))?;
    println!();
    println!("Offsets of group '{}' were reset.", args.group);
    Ok(())
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM]` (Kafka's `--to-datetime` format) into
/// milliseconds since the epoch; without a zone the time is UTC.
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("invalid datetime {s:?}: expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]");
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-');
    let year: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let month: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let day: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    // Split off the zone: 'Z', or the last '+'/'-' after the time.
    let (time, offset_ms) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let h: i64 = digits[..2].parse().map_err(|_| bad())?;
        let m: i64 = digits[2..].parse().map_err(|_| bad())?;
        (t, sign * (h * 3_600_000 + m * 60_000))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let hour: i64 = t.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let minute: i64 = t.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let second: i64 = t
        .next()
        .map_or(Some(0), |v| v.parse().ok())
        .ok_or_else(bad)?;
    if t.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let millis: i64 = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        f.parse().map_err(|_| bad())?
    };
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis - offset_ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Prints left-aligned columns separated by two spaces.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        action: GroupsAction,
    }

    #[test]
    fn flags_parse_like_kafka_consumer_groups() {
        Cli::command().debug_assert();
        let ok = |args: &[&str]| {
            let mut all = vec!["groups"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).is_ok()
        };
        assert!(ok(&["list", "--state", "-X", "client.id=x"]));
        assert!(ok(&["describe", "g", "--bootstrap-server", "h:1"]));
        assert!(ok(&["reset-offsets", "g", "--topic", "t", "--to-latest"]));
        assert!(ok(&[
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-offset",
            "3",
            "--execute"
        ]));
        assert!(
            !ok(&["reset-offsets", "g", "--topic", "t"]),
            "a target is required"
        );
        assert!(
            !ok(&["reset-offsets", "g", "--to-latest"]),
            "a topic is required"
        );
        assert!(!ok(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--to-earliest"
        ]));
        assert!(!ok(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--execute",
            "--dry-run"
        ]));
        assert!(!ok(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--all-topics",
            "--to-latest"
        ]));
    }

    #[test]
    fn datetimes_parse_like_kafkas_tool() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T14:34:56.789+02:00").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T10:34:56.789-0200").unwrap(),
            1_709_210_096_789
        );
        for bad in [
            "2024-02-29",
            "2024-13-01T00:00:00",
            "yesterday",
            "2024-01-01T25:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
