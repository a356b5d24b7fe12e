//! The sandbox child's main loop (`baton sandbox` and the `baton-sandbox` binary): caps its
//! own memory and CPU time with `setrlimit`, then runs one script per request read from stdin
//! and answers on stdout until stdin closes. A script over a cap kills this process (the
//! allocator aborts at `RLIMIT_DATA`, the kernel sends `SIGXCPU` at `RLIMIT_CPU`); the parent
//! sees it die, fails the node and starts another child.

use std::io::{self, BufReader, BufWriter};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::time::{ClockId, clock_gettime};

use crate::engine::{Output, RhaiEngine};
use crate::protocol::{Request, Response, read_frame, write_frame};

/// The flag the parent passes: the child's memory cap in MiB.
pub const MEMORY_FLAG: &str = "--memory-mb";

/// Runs the child: `args` are the arguments after the program (or subcommand) name.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut memory_mb = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u64>())) {
            (MEMORY_FLAG, Some(Ok(mb))) if mb > 0 => memory_mb = Some(mb),
            _ => {
                eprintln!("usage: sandbox {MEMORY_FLAG} <MiB>  (the parent starts this process)");
                return ExitCode::from(2);
            }
        }
    }
    let Some(memory_mb) = memory_mb else {
        eprintln!("sandbox: {MEMORY_FLAG} is required");
        return ExitCode::from(2);
    };
    if let Err(e) = cap_self(memory_mb) {
        eprintln!("sandbox: cannot set resource limits: {e}");
        return ExitCode::from(3);
    }
    match serve(
        &mut BufReader::new(io::stdin().lock()),
        &mut BufWriter::new(io::stdout().lock()),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox: {e}");
            ExitCode::from(4)
        }
    }
}

/// Caps memory (private writable mappings, heap included: `RLIMIT_DATA`, which unlike
/// `RLIMIT_AS` does not count the binary's code or reserved-but-unused address space), turns
/// off core dumps (a killed child must not write its heap to disk) and sets a first CPU cap
/// before anything else runs.
fn cap_self(memory_mb: u64) -> io::Result<()> {
    let bytes = memory_mb.saturating_mul(1024 * 1024);
    let fixed = |n| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    setrlimit(Resource::Data, fixed(bytes))?;
    setrlimit(Resource::Core, fixed(0))?;
    set_cpu_budget(1)
}

/// Lets the coming run use `secs` more CPU seconds than this process has used so far. Only the
/// soft limit moves (an unprivileged process cannot raise a hard limit it lowered); the
/// process itself only ever runs scripts, which cannot call `setrlimit`.
fn set_cpu_budget(secs: u64) -> io::Result<()> {
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let used_secs = u64::try_from(used.tv_sec).unwrap_or(0) + u64::from(used.tv_nsec > 0);
    let maximum = getrlimit(Resource::Cpu).maximum;
    let current = used_secs.saturating_add(secs.max(1));
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(maximum.map_or(current, |m| current.min(m))),
            maximum,
        },
    )?;
    Ok(())
}

fn serve(input: &mut impl io::Read, output: &mut impl io::Write) -> io::Result<()> {
    let engine = RhaiEngine::default();
    // The parent stops a script by killing this process, never through the flag.
    let never = Arc::new(AtomicBool::new(false));
    while let Some(req) = read_frame::<Request>(input)? {
        set_cpu_budget(req.cpu_secs)?;
        let printed = Output::default();
        let result = engine
            .run(&req.script, req.inputs, req.budget, never.clone(), &printed)
            .map_err(Into::into);
        let output_lines = std::mem::take(&mut *printed.lock().unwrap_or_else(|p| p.into_inner()));
        write_frame(
            output,
            &Response {
                result,
                output: output_lines,
            },
        )?;
    }
    Ok(())
}
