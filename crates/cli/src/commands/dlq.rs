//! `baton dlq list|show|replay|purge`: the dead-letter queue as an operation — see what landed
//! there and why, look at one message, re-drive messages after a fix, or drop them. The queue
//! is read with `baton_amqp::Broker::dead_letters` (held in order, nothing lost); replay resets
//! the message's durable delivery count in Redis first (README, "Operations → Dead letters").

use std::path::PathBuf;
use std::time::Duration;

use baton_amqp::{Broker, DeadLetter, DeadLetterFilter};
use baton_engine::ports::{ExecutionStore, Lifecycle};
use baton_redis::{RedisOptions, RedisStore};
use baton_worker::Settings;
use clap::{Args, Subcommand};
use serde_json::json;

/// Dead letters read at most, unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;

#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List dead letters (oldest first): id, execution, node, reason, time, delivery count.
    List(ListArgs),
    /// Print one dead letter: its headers and its body (pretty JSON).
    Show(ShowArgs),
    /// Re-publish dead letters to the execution queue, once each, then remove them.
    Replay(ReplayArgs),
    /// Remove dead letters for good.
    Purge(PurgeArgs),
}

/// Which dead letters, and where the queue is.
#[derive(Args, Debug)]
pub struct Select {
    /// Only dead letters whose reason contains this text (case-insensitive).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only dead letters of this execution.
    #[arg(long)]
    pub execution: Option<String>,
    /// Read at most this many messages from the head of the queue (filters apply to those).
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
    /// Worker configuration file (broker and Redis URLs, queue and key prefixes).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub select: Select,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The dead letter's id (from `baton dlq list`).
    pub id: String,
    #[command(flatten)]
    pub select: Select,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Ids to replay (from `baton dlq list`); or use the filters, or `--all`.
    pub ids: Vec<String>,
    #[command(flatten)]
    pub select: Select,
    /// Every dead letter read (within `--limit`).
    #[arg(long)]
    pub all: bool,
    /// Replay a message even when its execution has finished (the engine then drops it: it
    /// leaves the dead-letter queue and runs nothing).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// Ids to remove; or use the filters, or `--all`.
    pub ids: Vec<String>,
    #[command(flatten)]
    pub select: Select,
    /// Every dead letter read (within `--limit`).
    #[arg(long)]
    pub all: bool,
    /// Confirm: without it nothing is removed.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: DlqArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.command {
            DlqCommand::List(a) => list(a).await,
            DlqCommand::Show(a) => show(a).await,
            DlqCommand::Replay(a) => replay(a).await,
            DlqCommand::Purge(a) => purge(a).await,
        }
    })
}

fn filter(select: &Select, ids: Vec<String>) -> DeadLetterFilter {
    DeadLetterFilter {
        ids,
        reason: select.reason.clone(),
        execution: select.execution.clone(),
    }
}

fn settings(select: &Select) -> anyhow::Result<Settings> {
    Ok(Settings::load(select.config.as_deref())?)
}

async fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let options = super::submit::amqp_options(settings, "baton-dlq");
    Ok(Broker::connect(options).await?)
}

/// The node a dead letter names: a hop's `node_id`, a start's `current_node`.
fn node_of(letter: &DeadLetter) -> Option<String> {
    letter
        .body_field("node_id")
        .or_else(|| letter.body_field("current_node"))
}

/// How often the execution queue had delivered it when it was dead-lettered (quorum queues
/// count it in `x-delivery-count`; classic queues do not).
fn deliveries_of(letter: &DeadLetter) -> Option<String> {
    letter
        .headers
        .get(baton_amqp::DELIVERY_COUNT_HEADER)
        .cloned()
}

fn summary(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "id": letter.id,
        "execution_id": letter.body_field("execution_id"),
        "workflow_id": letter.body_field("workflow_id"),
        "node_id": node_of(letter),
        "reason": letter.reason(),
        "dead_lettered_at": letter.dead_lettered_at(),
        "delivery_count": deliveries_of(letter),
        "bytes": letter.body.len(),
    })
}

async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let settings = settings(&args.select)?;
    let broker = broker(&settings).await?;
    let batch = broker.dead_letters(args.select.limit).await?;
    let wanted = filter(&args.select, Vec::new());
    let letters: Vec<&DeadLetter> = batch.letters().filter(|l| wanted.matches(l)).collect();
    if args.json {
        let rows: Vec<_> = letters.iter().map(|l| summary(l)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<16}  {:<24}  {:<6}  {:<36}  {:<16}  REASON",
            "ID", "DEAD-LETTERED AT", "DELIV.", "EXECUTION", "NODE"
        );
        for l in &letters {
            println!(
                "{:<16}  {:<24}  {:<6}  {:<36}  {:<16}  {}",
                l.id,
                l.dead_lettered_at(),
                deliveries_of(l).unwrap_or_else(|| "-".into()),
                l.body_field("execution_id").unwrap_or_else(|| "-".into()),
                node_of(l).unwrap_or_else(|| "-".into()),
                one_line(l.reason(), 100),
            );
        }
        let read = batch.letters().count();
        eprintln!(
            "{} dead letter(s) shown of {read} read{}",
            letters.len(),
            if read == args.select.limit {
                " (the --limit: there may be more)"
            } else {
                ""
            }
        );
    }
    batch.release().await?;
    broker.close().await;
    Ok(0)
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max_chars {
        format!("{}…", flat.chars().take(max_chars).collect::<String>())
    } else {
        flat
    }
}

async fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let settings = settings(&args.select)?;
    let broker = broker(&settings).await?;
    let batch = broker.dead_letters(args.select.limit).await?;
    let found = batch.letters().find(|l| l.id == args.id).cloned();
    batch.release().await?;
    broker.close().await;
    let Some(letter) = found else {
        eprintln!(
            "error: no dead letter `{}` among the first {} of the queue (see `baton dlq list`)",
            args.id, args.select.limit
        );
        return Ok(1);
    };
    println!("id: {}", letter.id);
    println!("headers:");
    for (name, value) in &letter.headers {
        println!("  {name}: {value}");
    }
    println!("body ({} bytes):", letter.body.len());
    match serde_json::from_slice::<serde_json::Value>(&letter.body) {
        Ok(value) => println!("{}", serde_json::to_string_pretty(&value)?),
        Err(_) => println!("{}", String::from_utf8_lossy(&letter.body)),
    }
    Ok(0)
}

/// Ids, filters or `--all`: an operation that removes messages never takes "everything" by
/// default.
fn selection(ids: &[String], select: &Select, all: bool) -> Option<&'static str> {
    let filtered = !ids.is_empty() || select.reason.is_some() || select.execution.is_some();
    match (filtered, all) {
        (false, false) => Some("name ids, or filter with --reason/--execution, or pass --all"),
        (true, true) => Some("--all takes no ids or filters"),
        _ => None,
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    if let Some(problem) = selection(&args.ids, &args.select, args.all) {
        eprintln!("error: {problem}");
        return Ok(2);
    }
    let settings = settings(&args.select)?;
    let redis = RedisOptions {
        key_prefix: settings.connection.key_prefix.clone(),
        ..RedisOptions::default()
    };
    let store = tokio::time::timeout(
        Duration::from_secs(10),
        RedisStore::connect(&settings.connection.redis_url, redis),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "Redis did not answer within 10 s (a replay resets the message's delivery count there)"
        )
    })??;
    let counts = store.deliveries();
    let broker = broker(&settings).await?;
    let mut batch = broker.dead_letters(args.select.limit).await?;
    let wanted = filter(&args.select, args.ids.clone());
    let chosen: Vec<DeadLetter> = batch
        .letters()
        .filter(|l| wanted.matches(l))
        .cloned()
        .collect();
    let (mut replayed, mut skipped) = (0, 0);
    let mut failure = None;
    for letter in &chosen {
        let finished = match letter.body_field("execution_id") {
            Some(id) => match store.lifecycle(&id).await {
                Ok(Lifecycle::Finished { status, .. }) => Some((id, status.as_str().to_owned())),
                _ => None,
            },
            None => None,
        };
        if let Some((execution, status)) = &finished
            && !args.force
        {
            println!(
                "{}: skipped: execution {execution} has finished ({status}); the engine would drop the replay (--force replays it anyway)",
                letter.id
            );
            skipped += 1;
            continue;
        }
        // A fresh budget first: a message that crashed workers would otherwise be
        // dead-lettered again at its first redelivery.
        if let Err(e) = counts.forget(&letter.body).await {
            failure = Some(anyhow::anyhow!(
                "{}: cannot reset its delivery count: {e}",
                letter.id
            ));
            break;
        }
        match batch.replay(&letter.id).await {
            Ok(_) => {
                replayed += 1;
                match finished {
                    Some((execution, status)) => println!(
                        "{}: replayed; execution {execution} has finished ({status}), so the engine drops it",
                        letter.id
                    ),
                    None => println!(
                        "{}: replayed to {}",
                        letter.id,
                        broker.options().topology.execution_queue
                    ),
                }
            }
            Err(e) => {
                failure = Some(anyhow::anyhow!(
                    "{}: not replayed (it stays in the dead-letter queue): {e}",
                    letter.id
                ));
                break;
            }
        }
    }
    batch.release().await?;
    broker.close().await;
    if let Some(e) = failure {
        return Err(e);
    }
    eprintln!(
        "{replayed} replayed, {skipped} skipped, of {} matching",
        chosen.len()
    );
    Ok(0)
}

async fn purge(args: PurgeArgs) -> anyhow::Result<u8> {
    if let Some(problem) = selection(&args.ids, &args.select, args.all) {
        eprintln!("error: {problem}");
        return Ok(2);
    }
    let settings = settings(&args.select)?;
    let broker = broker(&settings).await?;
    let mut batch = broker.dead_letters(args.select.limit).await?;
    let wanted = filter(&args.select, args.ids.clone());
    let chosen: Vec<String> = batch
        .letters()
        .filter(|l| wanted.matches(l))
        .map(|l| l.id.clone())
        .collect();
    let mut removed = 0;
    if args.yes {
        for id in &chosen {
            if batch.remove(id).await? {
                removed += 1;
            }
        }
    }
    batch.release().await?;
    broker.close().await;
    if args.yes {
        eprintln!("{removed} dead letter(s) removed");
    } else {
        for id in &chosen {
            println!("{id}");
        }
        eprintln!(
            "{} dead letter(s) would be removed: run again with --yes",
            chosen.len()
        );
    }
    Ok(0)
}
