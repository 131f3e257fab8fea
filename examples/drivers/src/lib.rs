//! Programs that drive Dipla from Rust: the functions behind the example binaries, so the
//! integration tests run exactly what the binaries run.

use std::path::{Path, PathBuf};

use dipla_server::{Dipla, DriverError};
use mandelbrot::View;

/// Where `cargo xtask build-guests` puts guest `name`.
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-unknown-unknown/release")
        .join(format!("{name}.wasm"))
}

/// Factorises `numbers`, counts each number's prime factors, and adds the counts: three
/// stages, each starting on the previous one's outputs as soon as they exist.
///
/// # Errors
/// The first failure, typed: which task of which stage, and why.
pub async fn chain(dipla: &Dipla, numbers: std::ops::Range<u64>) -> Result<u64, DriverError> {
    let m = dipla.module(guest("factorise"))?;
    let factors = m.task("factorise").map(numbers);
    let counts = m.task("count").map(&factors);
    m.task("sum").reduce(&counts).get().await
}

/// Renders `view` over `bands` tasks and returns its shades, row by row: the bands come back
/// in input order whatever order the workers finish them in.
///
/// # Errors
/// The first failure, typed; or bands that do not add up to the image.
pub async fn mandelbrot(dipla: &Dipla, view: View, bands: u32) -> Result<Vec<u8>, DriverError> {
    let m = dipla.module(guest("mandelbrot"))?;
    let bands: Vec<Vec<u8>> = m.task("rows").scatter(view, u64::from(bands)).get().await?;
    Ok(bands.concat())
}

/// Writes shades as an RGB PNG.
///
/// # Errors
/// When the file cannot be written, or the shades do not fill `width` × `height`.
pub fn write_png(path: &Path, width: u32, height: u32, shades: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(
        shades.len() == width as usize * height as usize,
        "{} shades for a {width}x{height} image",
        shades.len()
    );
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    let rgb: Vec<u8> = shades.iter().flat_map(|&s| mandelbrot::colour(s)).collect();
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(())
}
