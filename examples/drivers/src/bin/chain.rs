//! The chain from the README, driven from Rust: factorise → count → sum over 2,000 numbers
//! near 10^12. Build the guests first (`cargo xtask build-guests`).

use clap::Parser;
use dipla_server::Dipla;

#[derive(Parser)]
#[command(about = "Counts the prime factors of numbers near 10^12 on Dipla workers.")]
struct Args {
    /// Local workers (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// How many numbers, from 10^12.
    #[arg(long, default_value_t = 2000)]
    count: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = Dipla::builder();
    if let Some(workers) = args.workers {
        builder = builder.local_workers(workers);
    }
    let dipla = builder.start().await?;
    let start = 1_000_000_000_000u64;
    let total = dipla_examples::chain(&dipla, start..start + args.count).await?;
    println!(
        "{} numbers from {start} have {total} prime factors in all",
        args.count
    );
    dipla.shutdown().await;
    Ok(())
}
