//! A sandbox child on its own (the `baton` binary runs the same loop as `baton sandbox`):
//! used by this crate's tests and by deployments that point `BATON_CODE_SANDBOX_PROGRAM` at it.

fn main() -> std::process::ExitCode {
    baton_sandbox::child::main(std::env::args().skip(1))
}
