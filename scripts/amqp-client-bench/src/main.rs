//! hop-ceiling's variant b (`../shared/bench/hop-ceiling`) with amqprs, an AMQP client whose
//! socket I/O runs on tokio tasks, in place of lapin, whose I/O runs on a thread of its own.
//! Same hop: receive a persistent message, one pipelined HGET + HSET on the chain's Redis hash,
//! publish the next persistent message, wait for its confirm, ack. Same output keys, so the
//! two compare line by line (RFC 0011, "The AMQP client, measured").
//!
//!   amqp-client-bench [--chains 64] [--secs 6] [--warmup 2]
//!   (AMQP_ADDR: amqprs reads the vhost literally, so the default vhost is no path at all, not
//!   `/%2f`; REDIS_URL)

use std::{
    collections::BTreeMap,
    error::Error,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use amqprs::{
    Ack, BasicProperties, Cancel, CloseChannel, Nack, Return,
    callbacks::{ChannelCallback, DefaultConnectionCallback},
    channel::{
        BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments,
        Channel, ConfirmSelectArguments, QueueDeclareArguments, QueueDeleteArguments,
    },
    connection::{Connection, OpenConnectionArguments},
};
use async_trait::async_trait;
use tokio::sync::oneshot;

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const HOP_Q: &str = "acb.hop";
const PAYLOAD: usize = 256;
const CTX_BYTES: usize = 256;

/// Confirms owed by the broker, by delivery tag: amqprs reports them to a channel callback, so
/// waiting for one is ours to build (lapin returns a future per publish).
#[derive(Clone, Default)]
struct Confirms(Arc<Mutex<(u64, BTreeMap<u64, oneshot::Sender<bool>>)>>);

impl Confirms {
    fn settle(&self, tag: u64, multiple: bool, acked: bool) {
        let Ok(mut owed) = self.0.lock() else { return };
        let settled = if multiple {
            let later = owed.1.split_off(&(tag + 1));
            std::mem::replace(&mut owed.1, later)
        } else {
            owed.1
                .remove(&tag)
                .map(|tx| BTreeMap::from([(tag, tx)]))
                .unwrap_or_default()
        };
        for (_, tx) in settled {
            let _ = tx.send(acked);
        }
    }
}

struct ConfirmCallback(Confirms);

#[async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        self.0.settle(ack.delivery_tag(), ack.mutiple(), true);
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        self.0.settle(nack.delivery_tag(), nack.multiple(), false);
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// A confirm-mode channel whose publishes take their delivery tags in the order they are sent.
struct Publisher {
    channel: Channel,
    confirms: Confirms,
    in_order: tokio::sync::Mutex<()>,
}

impl Publisher {
    async fn publish(&self, queue: &str, body: Vec<u8>) -> AnyResult<oneshot::Receiver<bool>> {
        let (tx, rx) = oneshot::channel();
        let _sending = self.in_order.lock().await;
        {
            let mut owed = self
                .confirms
                .0
                .lock()
                .map_err(|_| "confirms lock poisoned")?;
            owed.0 += 1;
            let tag = owed.0;
            owed.1.insert(tag, tx);
        }
        let mut props = BasicProperties::default();
        props.with_delivery_mode(2);
        self.channel
            .basic_publish(props.finish(), body, BasicPublishArguments::new("", queue))
            .await?;
        Ok(rx)
    }
}

fn encode(chain: u32, hop: u64, t_prev: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(PAYLOAD);
    v.extend_from_slice(&chain.to_le_bytes());
    v.extend_from_slice(&hop.to_le_bytes());
    v.extend_from_slice(&t_prev.to_le_bytes());
    v.resize(PAYLOAD, b'x');
    v
}

fn decode(d: &[u8]) -> Option<(u32, u64, u64)> {
    Some((
        u32::from_le_bytes(d.get(0..4)?.try_into().ok()?),
        u64::from_le_bytes(d.get(4..12)?.try_into().ok()?),
        u64::from_le_bytes(d.get(12..20)?.try_into().ok()?),
    ))
}

/// CPU ticks (utime + stime) of `/proc/<pid>`, or of the first process named `comm`.
fn ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(at) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[at + 2..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn ticks_of(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
            return ticks(pid);
        }
    }
    0
}

fn arg(name: &str, default: f64) -> AnyResult<f64> {
    let argv: Vec<String> = std::env::args().collect();
    match argv.iter().position(|a| a == name) {
        Some(i) => Ok(argv
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    let chains = arg("--chains", 64.0)? as u32;
    let secs = arg("--secs", 6.0)?;
    let warmup = arg("--warmup", 2.0)?;
    let amqp = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let base = Instant::now();
    let now_ns = move || base.elapsed().as_nanos() as u64;
    let open = OpenConnectionArguments::try_from(amqp.as_str())?;

    let admin_conn = Connection::open(&open).await?;
    admin_conn
        .register_callback(DefaultConnectionCallback)
        .await?;
    let admin = admin_conn.open_channel(None).await?;
    let _ = admin.queue_delete(QueueDeleteArguments::new(HOP_Q)).await;
    admin
        .queue_declare(QueueDeclareArguments::durable_client_named(HOP_Q))
        .await?;

    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    for chain in 0..chains {
        let key = format!("acb:ctx:{chain}");
        let mut seed = redis::pipe();
        seed.del(&key).ignore();
        for f in 0..8 {
            seed.hset(&key, format!("out:{f}"), vec![b'c'; CTX_BYTES])
                .ignore();
        }
        let () = seed.query_async(&mut redis).await?;
    }

    // The worker: one connection, a consume channel and a confirm-mode publish channel.
    let conn = Connection::open(&open).await?;
    conn.register_callback(DefaultConnectionCallback).await?;
    let consume = conn.open_channel(None).await?;
    consume
        .basic_qos(BasicQosArguments::new(0, 1000, false))
        .await?;
    let publish = conn.open_channel(None).await?;
    let confirms = Confirms::default();
    publish
        .register_callback(ConfirmCallback(confirms.clone()))
        .await?;
    publish
        .confirm_select(ConfirmSelectArguments::default())
        .await?;
    let publisher = Arc::new(Publisher {
        channel: publish,
        confirms,
        in_order: Default::default(),
    });
    let (_, mut deliveries) = consume
        .basic_consume_rx(BasicConsumeArguments::new(HOP_Q, "acb"))
        .await?;

    let warm_ns = now_ns() + (warmup * 1e9) as u64;
    let end_ns = warm_ns + (secs * 1e9) as u64;
    let hops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    {
        let (publisher, hops, errors, stopping, latencies, redis) = (
            publisher.clone(),
            hops.clone(),
            errors.clone(),
            stopping.clone(),
            latencies.clone(),
            redis.clone(),
        );
        tokio::spawn(async move {
            while let Some(message) = deliveries.recv().await {
                let (Some(deliver), Some(body)) = (message.deliver, message.content) else {
                    continue;
                };
                let (publisher, hops, errors, stopping, latencies, consume, mut redis) = (
                    publisher.clone(),
                    hops.clone(),
                    errors.clone(),
                    stopping.clone(),
                    latencies.clone(),
                    consume.clone(),
                    redis.clone(),
                );
                tokio::spawn(async move {
                    let hop = async {
                        let received = now_ns();
                        let (chain, hop, t_prev) = decode(&body).ok_or("short body")?;
                        if (warm_ns..end_ns).contains(&received) {
                            hops.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut l) = latencies.lock() {
                                l.push(received.saturating_sub(t_prev));
                            }
                        }
                        let key = format!("acb:ctx:{chain}");
                        let (_, _): (Option<Vec<u8>>, i64) = redis::pipe()
                            .hget(&key, format!("out:{}", (hop + 7) % 8))
                            .hset(&key, format!("out:{}", hop % 8), vec![b'v'; CTX_BYTES])
                            .query_async(&mut redis)
                            .await?;
                        if !stopping.load(Ordering::Relaxed) {
                            let confirm = publisher
                                .publish(HOP_Q, encode(chain, hop + 1, received))
                                .await?;
                            if !confirm.await? {
                                return Err("nacked".into());
                            }
                        }
                        consume
                            .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                            .await?;
                        AnyResult::Ok(())
                    };
                    if let Err(e) = hop.await {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("hop: {e}");
                    }
                });
            }
        });
    }
    for chain in 0..chains {
        drop(publisher.publish(HOP_Q, encode(chain, 0, now_ns())).await?);
    }

    tokio::time::sleep(Duration::from_nanos(warm_ns.saturating_sub(now_ns()))).await;
    let before = (
        ticks_of("beam.smp"),
        ticks_of("redis-server"),
        ticks("self"),
    );
    tokio::time::sleep(Duration::from_nanos(end_ns.saturating_sub(now_ns()))).await;
    let after = (
        ticks_of("beam.smp"),
        ticks_of("redis-server"),
        ticks("self"),
    );
    stopping.store(true, Ordering::Relaxed);

    let n = hops.load(Ordering::Relaxed).max(1) as f64;
    let us_per_hop = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1e4 / n; // 100 ticks/s
    let mut l = latencies
        .lock()
        .map_err(|_| "latencies lock poisoned")?
        .clone();
    l.sort_unstable();
    let q = |f: f64| l.get((l.len() as f64 * f) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{{\"client\":\"amqprs\",\"variant\":\"b\",\"chains\":{chains},\"hops_per_s\":{:.1},\"hop_p50_us\":{:.1},\
\"hop_p99_us\":{:.1},\"errors\":{},\"cpu_us_per_hop_broker\":{:.1},\"cpu_us_per_hop_redis\":{:.1},\"cpu_us_per_hop_bench\":{:.1}}}",
        n / secs,
        q(0.5),
        q(0.99),
        errors.load(Ordering::Relaxed),
        us_per_hop(before.0, after.0),
        us_per_hop(before.1, after.1),
        us_per_hop(before.2, after.2),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = admin.queue_delete(QueueDeleteArguments::new(HOP_Q)).await;
    for chain in 0..chains {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(format!("acb:ctx:{chain}"))
            .query_async(&mut redis)
            .await;
    }
    Ok(())
}
