//! Test support for the sources with a one-pass reader ([`super::fast_json`]): their
//! fixture bodies, the check that `parse` agrees with the general `serde_json` route,
//! and byte mutations of a fixture for the property tests.

use std::fmt::Debug;

/// The request bodies in `fixtures/<source>/` (every `*.json` except the expected
/// outputs and `integration.json`) with their file stems, sorted by stem.
pub fn fixture_bodies(source: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../fixtures/{source}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".json") && !name.contains(".expected.") && name != "integration.json"
        })
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            (stem, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Asserts that the one-pass route and the general route gave the same results and
/// errors (compared by their `Debug` form) for `body`.
pub fn assert_routes_agree<R: Debug>(one_pass: R, general: R, body: &[u8]) {
    assert_eq!(
        format!("{one_pass:?}"),
        format!("{general:?}"),
        "{}",
        String::from_utf8_lossy(body)
    );
}

/// Fixture `case` (modulo the number of fixtures) of `source` with each byte edit
/// applied at its position (taken modulo the body's length).
pub fn mutated_fixture(
    source: &str,
    case: usize,
    edits: Vec<(proptest::sample::Index, u8)>,
) -> Vec<u8> {
    let bodies = fixture_bodies(source);
    let mut body = bodies[case % bodies.len()].1.clone();
    for (at, byte) in edits {
        let i = at.index(body.len());
        body[i] = byte;
    }
    body
}
