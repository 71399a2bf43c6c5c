//! PCA alone on a features `.npy` (e.g. from `hogsvm extract`), for the comparison with
//! scikit-learn's `PCA(k, svd_solver="randomized")` in scripts/peer_pca.py: fit time (median of
//! `rounds`), the solver used, and the explained-variance ratios, as one JSON object on stdout.
//! usage: cargo run --release --example pca_bench -- FEATURES.npy K [ROUNDS [ITERATIONS [OVERSAMPLING]]]
//! (the last two override PcaParams' defaults, to measure the trade-off).
use hogsvm::reduce::{Components, PcaParams, Solver};
use std::time::Instant;

fn main() -> hogsvm::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: pca_bench FEATURES.npy K [ROUNDS [ITERATIONS [OVERSAMPLING]]]");
        std::process::exit(2);
    }
    let x = hogsvm::io::read_features_npy(std::path::Path::new(&args[1]))?;
    let k: usize = args[2].parse().expect("K: a count");
    let rounds: usize = args
        .get(3)
        .map_or(3, |r| r.parse().expect("ROUNDS: a count"));
    let mut params = PcaParams {
        components: Components::Count(k),
        ..PcaParams::default()
    };
    if let Some(i) = args.get(4) {
        params.power_iterations = i.parse().expect("ITERATIONS: a count");
    }
    if let Some(o) = args.get(5) {
        params.oversampling = o.parse().expect("OVERSAMPLING: a count");
    }
    let mut times = Vec::new();
    let mut fit = None;
    for _ in 0..rounds {
        let t = Instant::now();
        fit = Some(params.fit(x.view())?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let pca = fit.expect("at least one round");
    let solver = match Solver::for_shape(x.nrows(), x.ncols()) {
        Solver::Covariance => "covariance",
        Solver::DataMatrix => "data matrix",
    };
    let ratios: Vec<f64> = pca.explained_variance_ratio.to_vec();
    println!(
        "{}",
        serde_json::json!({
            "n": x.nrows(), "d": x.ncols(), "k": k, "solver": solver,
            "threads": rayon::current_num_threads(), "power_iterations": params.power_iterations,
            "oversampling": params.oversampling, "seconds": times,
            "median_seconds": times[times.len() / 2],
            "explained_variance_ratio": ratios,
        })
    );
    Ok(())
}
