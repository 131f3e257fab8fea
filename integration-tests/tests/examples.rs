//! Every example job, run as a user would (its own job.toml, local workers), its answer
//! checked against an independent local computation.

use dipla_sandbox::Sandbox;
use dipla_server::{RunOptions, Server, manifest};

use crate::support::root;

async fn run_example(name: &str) -> Vec<serde_json::Value> {
    let path = root().join("examples").join(name).join("job.toml");
    let job = manifest::load(&path, &Sandbox::new().unwrap()).unwrap();
    let server = Server::bind(
        job,
        RunOptions {
            local_workers: 2,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let summary = server.run(&mut out).await.unwrap();
    assert!(summary.success(), "{summary}");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stage<'a>(lines: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|line| line["stage"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_counts_every_prime_factor() {
    let lines = run_example("chain").await;
    let expected: u64 = (1_000_000_000_000u64..1_000_000_002_000)
        .map(|n| factorise::factorise(n).len() as u64)
        .sum();
    assert_eq!(stage(&lines, "total")[0]["output"], expected);
    assert_eq!(stage(&lines, "counts").len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pi_matches_the_local_computation_bit_for_bit() {
    let lines = run_example("pi").await;
    let total: u64 = (1..=200).map(pi::hits).sum();
    assert_eq!(stage(&lines, "total")[0]["output"], total);
    let estimate = stage(&lines, "pi")[0]["output"].as_f64().unwrap();
    assert_eq!(estimate, pi::estimate(total, 200));
    assert!(
        (estimate - std::f64::consts::PI).abs() < 0.001,
        "{estimate}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maze_exploration_reaches_exactly_the_reachable_cells() {
    let lines = run_example("maze-explore").await;
    let mut cells: Vec<[usize; 2]> = lines
        .iter()
        .map(|line| serde_json::from_value(line["output"].clone()).unwrap())
        .collect();
    cells.sort_unstable();
    assert_eq!(cells, maze_explore::reachable([1, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashsearch_stops_after_three_finds_that_all_verify() {
    let lines = run_example("hashsearch").await;
    let search = hashsearch::Search {
        data: "dipla".into(),
        start: 0,
        end: 1 << 32,
    };
    let mut finds = Vec::new();
    for line in &lines {
        let index = line["index"].as_u64().unwrap();
        let found: Vec<hashsearch::Find> = serde_json::from_value(line["output"].clone()).unwrap();
        // Every slice that ran reports exactly the finds a local search of it gives.
        let (start, end) = hashsearch::bounds(&search, index, 65536);
        let expected: Vec<u64> = (start..end)
            .filter(|&n| hashsearch::meets_target(&hashsearch::double_sha256(b"dipla", n)))
            .collect();
        assert_eq!(
            found.iter().map(|f| f.nonce).collect::<Vec<_>>(),
            expected,
            "slice {index}"
        );
        finds.extend(found);
    }
    assert!(finds.len() >= 3, "{finds:?}");
    assert!(
        lines.len() < 1000,
        "the search should stop early, ran {} slices",
        lines.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invert_matrix_gives_the_exact_inverse_in_row_order() {
    let lines = run_example("invert-matrix").await;
    let matrix: Vec<Vec<i64>> =
        serde_json::from_value(stage(&lines, "rows")[0]["input"][0].clone()).unwrap();
    let inverse: Vec<Vec<invert_matrix::Fraction>> =
        serde_json::from_value(stage(&lines, "inverse")[0]["output"].clone()).unwrap();
    let product = invert_matrix::multiply(&matrix, &inverse);
    for (i, row) in product.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            assert_eq!(
                *x,
                invert_matrix::Fraction::new(i128::from(i == j), 1),
                "({i}, {j})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_ranks_the_words_of_the_whole_text() {
    let lines = run_example("wordcount").await;
    let text = std::fs::read_to_string(root().join("examples/wordcount/keeper.jsonl")).unwrap();
    let whole: String = text
        .lines()
        .map(|line| serde_json::from_str::<String>(line).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let expected = wordcount::top(wordcount::count(whole), 20);
    let top: Vec<(String, u64)> =
        serde_json::from_value(stage(&lines, "top")[0]["output"].clone()).unwrap();
    assert_eq!(top, expected);
    assert_eq!(top.len(), 20);
    assert!(
        top.iter()
            .all(|(word, _)| !wordcount::STOP_WORDS.contains(&word.as_str()))
    );
}

/// The native image, band by band, as the guest computes it.
fn native_image(view: mandelbrot::View, bands: u32) -> Vec<u8> {
    (0..bands)
        .flat_map(|i| mandelbrot::rows(view, i, bands).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandelbrot_bands_are_the_native_image_in_order() {
    let lines = run_example("mandelbrot").await;
    let bands = stage(&lines, "bands");
    assert_eq!(bands.len(), 50);
    let image: Vec<u8> = bands
        .iter()
        .flat_map(|line| {
            line["output"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
        })
        .collect();
    let view = serde_json::from_value(bands[0]["input"][0].clone()).unwrap();
    assert_eq!(view, mandelbrot::View::whole(800, 600));
    assert!(
        image == native_image(view, 50),
        "the image differs from the native one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandelbrot_driver_assembles_a_png_of_the_native_image() {
    let dipla = dipla_server::Dipla::builder()
        .local_workers(2)
        .start()
        .await
        .unwrap();
    let view = mandelbrot::View::whole(200, 150);
    let shades = dipla_examples::mandelbrot(&dipla, view, 7).await.unwrap();
    assert!(
        shades == native_image(view, 7),
        "the image differs from the native one"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.png");
    dipla_examples::write_png(&path, 200, 150, &shades).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (200, 150));
    for (i, &shade) in shades.iter().enumerate() {
        assert_eq!(
            rgb[3 * i..3 * i + 3],
            mandelbrot::colour(shade),
            "pixel {i}"
        );
    }
    let inside = shades.iter().filter(|&&s| s == 0).count();
    assert!(
        inside > 1000 && inside < 150 * 200 / 2,
        "{inside} pixels inside the set"
    );
    dipla.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_driver_matches_the_manifest_chain() {
    let dipla = dipla_server::Dipla::builder()
        .local_workers(2)
        .start()
        .await
        .unwrap();
    let numbers = 1_000_000_000_000u64..1_000_000_000_300;
    let total = dipla_examples::chain(&dipla, numbers.clone())
        .await
        .unwrap();
    let expected: u64 = numbers.map(|n| factorise::factorise(n).len() as u64).sum();
    assert_eq!(total, expected);
    dipla.shutdown().await;
}
