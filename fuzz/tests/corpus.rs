//! The fuzz targets as a deterministic `cargo test`: each runs over its seed
//! corpus (`corpus/<target>/`, the folder cargo-fuzz also starts from) and a
//! bounded number of byte-level mutations of it, from a fixed PRNG seed, so a
//! failure reproduces exactly. `MIGRUN_FUZZ_ITERATIONS` (default 20000 per
//! target) sets the bound.

use std::path::Path;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens worth splicing into inputs: structure the parsers look for.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\t",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"=",
    b"${",
    b"}",
    b"[limits]\n",
    b"[connections.a]\n",
    b"url = ",
    b"\"header\"",
    b"null",
    b"-",
    b"T",
    b"Z",
    b"+00:00",
    b".",
    b"e",
    b"\\u0000",
    b"\xff",
    b"9223372036854775808",
    b"NaN",
    b"[\"int\",\"1\"]",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                let n = rng.below(input.len() - i).min(16) + 1;
                input.drain(i..(i + n).min(input.len()));
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(input.len() + 1);
                input.splice(i..i, token.iter().copied());
            }
            4 if input.len() > 1 => {
                // Duplicate a slice (repetition finds length and nesting bugs).
                let a = rng.below(input.len());
                let b = (a + rng.below(32) + 1).min(input.len());
                let slice = input[a..b].to_vec();
                let i = rng.below(input.len() + 1);
                input.splice(i..i, slice);
            }
            _ if !input.is_empty() => {
                let i = rng.below(input.len());
                input.truncate(i);
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

fn run(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {dir:?}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {dir:?}");
    for seed in &seeds {
        body(seed);
    }
    let iterations: usize = std::env::var("MIGRUN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x6d69_6772_756e_0001 ^ target.len() as u64);
    for i in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut input);
        let outcome = std::panic::catch_unwind(|| body(&input));
        if outcome.is_err() {
            let path = std::env::temp_dir().join(format!("migrun-fuzz-{target}-crash-{i}"));
            std::fs::write(&path, &input).unwrap();
            panic!("{target}: iteration {i} panicked; input saved to {path:?}");
        }
    }
}

#[test]
fn journal_reader() {
    run("journal_reader", migrun_fuzz::journal_reader);
}

#[test]
fn config_parser() {
    run("config_parser", migrun_fuzz::config_parser);
}

#[test]
fn value_decoding() {
    run("value_decoding", migrun_fuzz::value_decoding);
}
