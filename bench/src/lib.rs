//! What the benchmarks in `benches/` share: reading criterion's results back to print ratios.

/// Criterion's point estimate (mean, ns) for `group/name`, from its output folder.
pub fn estimate(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let path = format!("{dir}/criterion/{group}/{name}/new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}
