//! CPU time and peak memory of processes, from `/proc` (Linux; elsewhere every figure is absent).

use std::time::Instant;

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of a process.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clk_tck())
}

/// Pids whose `comm` is `name` (e.g. `beam.smp`, `redis-server`).
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`: peak resident set; `VmRSS`: current).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// (busy, total) CPU seconds of the whole box since boot.
pub fn box_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    let total = busy + v.get(3)? + v.get(4)?;
    Some((busy / clk_tck(), total / clk_tck()))
}

/// Processes whose CPU is attributed in a measurement window.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// The worker processes (their CPU is summed).
    pub workers: Vec<u32>,
    pub broker: Vec<u32>,
    pub redis: Vec<u32>,
}

impl Watched {
    pub fn find(workers: &[u32]) -> Self {
        Self {
            workers: workers.to_vec(),
            broker: pids_named("beam.smp"),
            redis: pids_named("redis-server"),
        }
    }
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    worker: f64,
    broker: f64,
    redis: f64,
    me: f64,
    busy: f64,
    total: f64,
}

fn sum(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_secs(*p)).sum()
}

impl Snapshot {
    pub fn take(w: &Watched) -> Self {
        let (busy, total) = box_secs().unwrap_or((0.0, 0.0));
        Self {
            at: Instant::now(),
            worker: sum(&w.workers),
            broker: sum(&w.broker),
            redis: sum(&w.redis),
            me: cpu_secs(std::process::id()).unwrap_or(0.0),
            busy,
            total,
        }
    }
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CpuWindow {
    pub window_s: f64,
    pub worker_s: f64,
    pub broker_s: f64,
    pub redis_s: f64,
    /// This process (the driver, or the embedded runtime).
    pub bench_s: f64,
    /// Everything else on the box (other work: noise).
    pub other_s: f64,
    /// Fraction of the box's CPU capacity in use.
    pub box_busy: f64,
}

impl CpuWindow {
    pub fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let busy = b.busy - a.busy;
        let total = b.total - a.total;
        let (worker, broker, redis, me) = (
            b.worker - a.worker,
            b.broker - a.broker,
            b.redis - a.redis,
            b.me - a.me,
        );
        Self {
            window_s: (b.at - a.at).as_secs_f64(),
            worker_s: worker,
            broker_s: broker,
            redis_s: redis,
            bench_s: me,
            other_s: busy - worker - broker - redis - me,
            box_busy: if total > 0.0 { busy / total } else { 0.0 },
        }
    }
}

/// Waits (at most `max_wait_s`) until the box is less than `pct` % busy over one second.
/// Returns the last busy fraction seen.
pub async fn quiet_gate(pct: f64, max_wait_s: f64) -> f64 {
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(max_wait_s);
    loop {
        let Some((b1, t1)) = box_secs() else {
            return 0.0;
        };
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let Some((b2, t2)) = box_secs() else {
            return 0.0;
        };
        let busy = if t2 > t1 { (b2 - b1) / (t2 - t1) } else { 0.0 };
        if busy * 100.0 < pct || Instant::now() >= deadline {
            return busy;
        }
    }
}
