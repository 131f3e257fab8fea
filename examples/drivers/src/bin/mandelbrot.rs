//! Renders the Mandelbrot set on Dipla workers, a band of rows per task, and writes a PNG.
//! Build the guests first (`cargo xtask build-guests`).

use std::path::PathBuf;

use clap::Parser;
use dipla_server::Dipla;
use mandelbrot::View;

#[derive(Parser)]
#[command(about = "Renders the Mandelbrot set on Dipla workers into a PNG.")]
struct Args {
    /// Where to write the image.
    #[arg(long, default_value = "mandelbrot.png")]
    out: PathBuf,
    /// Image width in pixels.
    #[arg(long, default_value_t = 800)]
    width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 600)]
    height: u32,
    /// How many tasks the rows are split over.
    #[arg(long, default_value_t = 50)]
    bands: u32,
    /// Local workers (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = Dipla::builder();
    if let Some(workers) = args.workers {
        builder = builder.local_workers(workers);
    }
    let dipla = builder.start().await?;
    let view = View::whole(args.width, args.height);
    let started = std::time::Instant::now();
    let shades = dipla_examples::mandelbrot(&dipla, view, args.bands).await?;
    dipla_examples::write_png(&args.out, args.width, args.height, &shades)?;
    println!(
        "{}x{} image in {} bands, rendered in {:.2} s: {}",
        args.width,
        args.height,
        args.bands,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    dipla.shutdown().await;
    Ok(())
}
