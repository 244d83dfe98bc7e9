//! The glue of each subcommand: turn arguments into library calls and results into
//! output and an exit code. No domain logic lives here.

pub mod app;
pub mod bench;
pub mod bench_mesh;
pub mod bench_suite;
pub mod node;
pub mod policy;
pub mod up;

use std::io::Write;

/// Writes `text` to standard output; a closed pipe (`causeway … | head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}
