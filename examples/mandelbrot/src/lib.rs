//! The Mandelbrot set, a band of rows per task: `rows(view, index, count)` renders band
//! `index` of `count` (the shape `scatter` gives), and the bands put end to end in index order
//! are the whole image, one shade per pixel.
//!
//! Plain `f64` arithmetic without fused multiply-adds is exact IEEE 754 in wasm and natively,
//! so every worker, and the native function, computes the same image bit for bit.

use std::ops::Range;

use dipla_guest::task;
use serde::{Deserialize, Serialize};

/// Which part of the plane to render, and how finely.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The real part at the image's centre.
    pub center_re: f64,
    /// The imaginary part at the image's centre.
    pub center_im: f64,
    /// The width of a pixel in the plane.
    pub pixel: f64,
    /// Iterations before a point is taken to be in the set.
    pub max_iterations: u32,
}

impl View {
    /// The classic whole-set view at `width` × `height`.
    pub fn whole(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            center_re: -0.6,
            center_im: 0.0,
            pixel: 3.0 / f64::from(width.max(1)),
            max_iterations: 500,
        }
    }
}

/// The rows of band `index` of `count`: consecutive, covering the image exactly once.
pub fn band(height: u32, index: u32, count: u32) -> Range<u32> {
    let at = |i: u32| (u64::from(height) * u64::from(i) / u64::from(count.max(1))) as u32;
    at(index)..at(index + 1)
}

/// The shade of one point: 0 inside the set, else 1..=255 growing with the iterations it took
/// to escape (on a square-root scale: `sqrt` is exact IEEE arithmetic, unlike `ln`, whose
/// last bits differ between libms).
pub fn shade(view: &View, x: u32, y: u32) -> u8 {
    let c_re = view.center_re + (f64::from(x) - f64::from(view.width) / 2.0) * view.pixel;
    let c_im = view.center_im + (f64::from(y) - f64::from(view.height) / 2.0) * view.pixel;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for n in 0..view.max_iterations {
        let (re2, im2) = (re * re, im * im);
        if re2 + im2 > 4.0 {
            let t = (f64::from(n) / f64::from(view.max_iterations)).sqrt();
            return 1 + (t * 254.0) as u8;
        }
        im = 2.0 * re * im + c_im;
        re = re2 - im2 + c_re;
    }
    0
}

/// The shades of band `index` of `count`, row by row.
#[task]
pub fn rows(view: View, index: u32, count: u32) -> Result<Vec<u8>, String> {
    if index >= count {
        return Err(format!("band {index} of {count} does not exist"));
    }
    if u64::from(view.width) * u64::from(view.height) > 64 << 20 {
        return Err(format!("{}x{} is too large", view.width, view.height));
    }
    let rows = band(view.height, index, count);
    let mut shades = Vec::with_capacity(rows.len() * view.width as usize);
    for y in rows {
        for x in 0..view.width {
            shades.push(shade(&view, x, y));
        }
    }
    Ok(shades)
}

/// The colour of a shade: black inside the set, the Bernstein-polynomial palette outside
/// (deep blue far away, orange and white near the boundary).
pub fn colour(shade: u8) -> [u8; 3] {
    if shade == 0 {
        return [0, 0, 0];
    }
    let t = f64::from(shade) / 255.0;
    let u = 1.0 - t;
    let channel = |value: f64| (value * 255.0).clamp(0.0, 255.0) as u8;
    [
        channel(9.0 * u * t * t * t),
        channel(15.0 * u * u * t * t),
        channel(8.5 * u * u * u * t),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_row_once() {
        for (height, count) in [(600, 50), (7, 3), (5, 8)] {
            let rows: Vec<u32> = (0..count).flat_map(|i| band(height, i, count)).collect();
            assert_eq!(rows, (0..height).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_origin_is_inside_and_far_points_escape_at_once() {
        let view = View::whole(300, 200);
        // Pixel (150 + 0.6 / pixel, 100) is the origin.
        let x = 150 + (0.6 / view.pixel) as u32;
        assert_eq!(shade(&view, x, 100), 0);
        assert_eq!(
            shade(&view, 0, 0),
            1 + (254.0 * (1.0f64 / 500.0).sqrt()) as u8
        );
        assert_eq!(rows(view, 3, 3).unwrap_err(), "band 3 of 3 does not exist");
    }
}
