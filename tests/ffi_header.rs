//! The checked-in header's version macros match Cargo.toml and the library.

use std::collections::HashMap;

fn header_macros() -> HashMap<String, u32> {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/valve.h"))
        .expect("include/valve.h is checked in");
    header
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("#define ")?.split_whitespace();
            let name = words.next()?.strip_prefix("VALVE_VERSION_")?;
            Some((name.to_owned(), words.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn header_version_macros_match_the_package() {
    let macros = header_macros();
    let part = |name: &str| macros.get(name).copied().unwrap_or_else(|| panic!("no {name} macro"));
    let expected: [u32; 3] = [
        env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap(),
        env!("CARGO_PKG_VERSION_MINOR").parse().unwrap(),
        env!("CARGO_PKG_VERSION_PATCH").parse().unwrap(),
    ];
    assert_eq!([part("MAJOR"), part("MINOR"), part("PATCH")], expected);
    let number = (expected[0] << 16) | (expected[1] << 8) | expected[2];
    assert_eq!(part("NUMBER"), number);
    assert_eq!(valve::ffi::valve_version_number(), number);
}
