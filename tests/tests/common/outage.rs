//! Broker outages for the chaos tests: a private RabbitMQ node ([`RabbitNode`]) taken down by
//! `rabbitmqctl stop_app`, by `rabbitmqctl stop` or by SIGKILL, kept down for a while, and
//! brought back.

use std::time::{Duration, Instant};

use super::distributed::RabbitNode;

/// How the broker goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFault {
    /// `rabbitmqctl stop_app` … `start_app`: the Erlang node stays, the listeners close.
    StopApp,
    /// `rabbitmqctl stop` … `rabbitmq-server -detached`: a clean shutdown and boot.
    Stop,
    /// SIGKILL of the node's process … boot: no goodbye to any client, recovery from disk.
    Kill,
}

/// Takes `node` down by `fault`, keeps it down for `down` (the outage the clients see), and
/// brings it back (returns once it accepts connections again). Blocking: call it from
/// `spawn_blocking`.
pub fn outage(node: &RabbitNode, fault: BrokerFault, down: Duration) {
    match fault {
        BrokerFault::StopApp => {
            ctl_ok(node, &["stop_app"]);
            std::thread::sleep(down);
            ctl_ok(node, &["start_app"]);
            ctl_ok(node, &["-q", "await_startup", "--timeout", "120"]);
        }
        BrokerFault::Stop => {
            node.stop();
            std::thread::sleep(down);
            node.boot();
        }
        BrokerFault::Kill => {
            kill_node(node);
            std::thread::sleep(down);
            node.boot();
        }
    }
}

fn ctl_ok(node: &RabbitNode, args: &[&str]) {
    let out = node.ctl(args);
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_tail()
    );
}

/// SIGKILLs the node's process (from its pid file, checked to be this node) and waits until it
/// is gone.
fn kill_node(node: &RabbitNode) {
    let pid_file = node.dir.join("rabbit.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", pid_file.display()));
    let pid = pid.trim().to_string();
    let proc_dir = format!("/proc/{pid}");
    // The node name is in the process's environment (RABBITMQ_NODENAME), not always in its
    // command line.
    let ours = ["cmdline", "environ"].iter().any(|f| {
        let text = std::fs::read(format!("{proc_dir}/{f}")).unwrap_or_default();
        String::from_utf8_lossy(&text).contains(&node.name)
    });
    assert!(
        ours,
        "pid {pid} from {} is not the node {}",
        pid_file.display(),
        node.name
    );
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {pid} failed");
    // Gone, or a zombie waiting for its reaper (it was started detached).
    let gone = || {
        std::fs::read_to_string(format!("{proc_dir}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gone(),
        "the node's process {pid} is still there 30 s after SIGKILL"
    );
}
