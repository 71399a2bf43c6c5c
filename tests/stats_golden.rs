//! src/stats.rs against scipy 1.17: McNemar's exact p-values (`scipy.stats.binomtest`) and Wilson
//! intervals (`binomtest(...).proportion_ci(method="wilson")`), from
//! fixtures/stats-golden/stats.json.
//!
//! The file is written only by scripts/stats_golden.sh (scipy in a venv);
//! `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test stats_golden` runs that script first, then
//! checks against the fresh file.
//!
//! Tolerances, for McNemar's p-values: within 1e-14 relative of the 40-digit values
//! (`p_value_exact`, mpmath; hogsvm is within about 6e-15 of them on every case), and within
//! 1e-12 of scipy's. scipy's own value is off the 40-digit one by up to about 2e-13 for
//! n = 20000 and 10^6 (Boost's incomplete beta there), so scipy alone could not be held to
//! 1e-14; either bound is far below one term of the smallest tail, so a wrong term fails.
//! Wilson endpoints within 1e-15 absolute of scipy's: the same closed form in the same order
//! (they differ by at most an ulp).

use std::path::{Path, PathBuf};

use hogsvm::stats::{mcnemar_exact, wilson_interval, Z_95};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    scipy_version: String,
    mcnemar: Vec<McNemarCase>,
    mcnemar_defined: Vec<McNemarCase>,
    wilson_confidence: f64,
    wilson_z: f64,
    wilson: Vec<WilsonCase>,
}

#[derive(Deserialize)]
struct McNemarCase {
    b: u64,
    c: u64,
    p_value: f64,
    p_value_exact: f64,
}

#[derive(Deserialize)]
struct WilsonCase {
    correct: u64,
    n: u64,
    low: f64,
    high: f64,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden() -> Golden {
    if std::env::var_os("HOGSVM_REGEN_GOLDEN").is_some() {
        let st = std::process::Command::new("bash")
            .arg(root().join("scripts/stats_golden.sh"))
            .status()
            .expect("run scripts/stats_golden.sh");
        assert!(st.success(), "scripts/stats_golden.sh failed");
    }
    let path: &Path = &root().join("fixtures/stats-golden/stats.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} (run scripts/stats_golden.sh): {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn stats_match_scipy() {
    let g = golden();
    assert!(g.scipy_version.starts_with("1.17."), "{}", g.scipy_version);
    assert!(g.mcnemar.len() >= 10 && !g.mcnemar_defined.is_empty());
    assert!(
        g.mcnemar.iter().any(|m| m.b + m.c >= 1_000_000),
        "a case with n = 10^6"
    );
    let rel = |a: f64, b: f64| if a == b { 0.0 } else { (a - b).abs() / b.abs() };
    let (mut worst_exact, mut worst_scipy) = (0.0f64, 0.0f64);
    for m in g.mcnemar.iter().chain(&g.mcnemar_defined) {
        let got = mcnemar_exact(m.b, m.c);
        assert_eq!((got.b, got.c), (m.b, m.c));
        let (e, s) = (
            rel(got.p_value, m.p_value_exact),
            rel(got.p_value, m.p_value),
        );
        worst_exact = worst_exact.max(e);
        worst_scipy = worst_scipy.max(s);
        assert!(
            e <= 1e-14 && s <= 1e-12,
            "McNemar b={} c={}: hogsvm {:e}, 40 digits {:e} (relative {e:e}), scipy {:e} \
             (relative {s:e})",
            m.b,
            m.c,
            got.p_value,
            m.p_value_exact,
            m.p_value
        );
    }
    eprintln!(
        "McNemar: largest relative difference {worst_exact:e} from the 40-digit values, \
         {worst_scipy:e} from scipy's"
    );

    assert_eq!(g.wilson_confidence, 0.95);
    assert_eq!(g.wilson_z, Z_95, "Z_95 is scipy's ndtri(0.975)");
    assert!(g.wilson.len() >= 10);
    let mut worst = 0.0f64;
    for w in &g.wilson {
        let (lo, hi) = wilson_interval(w.correct, w.n, g.wilson_z);
        worst = worst.max((lo - w.low).abs()).max((hi - w.high).abs());
        assert!(
            (lo - w.low).abs() <= 1e-15 && (hi - w.high).abs() <= 1e-15,
            "Wilson {}/{}: hogsvm ({lo}, {hi}), scipy ({}, {})",
            w.correct,
            w.n,
            w.low,
            w.high
        );
    }
    eprintln!("Wilson: largest absolute difference from scipy {worst:e}");
}
