//! `hash_bench`: the digests an upload computes (md5 and the multihash, sha512 by default;
//! sha256 for Glare's blobs), each from every implementation we could link, in MB/s on one
//! thread, then md5 ‖ sha512 on two threads as the upload runs them. Prints, never asserts.
//!
//! ```sh
//! cargo run --release -p glance-bench --bin hash_bench
//! cargo run --release -p glance-bench --bin hash_bench --features sha2-asm  # sha2's `asm`
//! ```
//!
//! RustCrypto's md-5 is built with its `asm` feature in this workspace, so its portable code
//! cannot be measured here; sha2 is portable (with run-time SHA-NI and AVX2 detection) unless
//! `--features sha2-asm`.

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "hash_bench",
    about = "Upload digest throughput per implementation"
)]
struct Args {
    /// Bytes hashed per measurement, in MiB.
    #[arg(long, default_value_t = 512)]
    size_mib: usize,
    /// Measurements of each; the best is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// One way to compute one digest: feed 1 MiB slices (the upload's batches), return hex.
struct Candidate {
    algorithm: &'static str,
    implementation: &'static str,
    run: fn(&[u8]) -> String,
}

const BATCH: usize = 1 << 20;

fn rustcrypto<D: sha2::Digest>(data: &[u8]) -> String {
    let mut d = D::new();
    for batch in data.chunks(BATCH) {
        d.update(batch);
    }
    hex::encode(d.finalize())
}

fn aws_lc(algorithm: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> String {
    let mut d = aws_lc_rs::digest::Context::new(algorithm);
    for batch in data.chunks(BATCH) {
        d.update(batch);
    }
    hex::encode(d.finish())
}

/// AWS-LC's MD5 through its C EVP interface: aws-lc-rs offers no MD5.
fn aws_lc_md5(data: &[u8]) -> String {
    use aws_lc_sys::{
        EVP_DigestFinal_ex, EVP_DigestInit_ex, EVP_DigestUpdate, EVP_MD_CTX_free, EVP_MD_CTX_new,
        EVP_md5,
    };
    let mut out = [0u8; 16];
    let mut len = 0u32;
    // SAFETY: the context is checked non-null, initialised before use and freed once; every
    // pointer passed is valid for the length given, and `out` holds an MD5 digest.
    unsafe {
        let ctx = EVP_MD_CTX_new();
        assert!(!ctx.is_null(), "EVP_MD_CTX_new");
        assert_eq!(EVP_DigestInit_ex(ctx, EVP_md5(), std::ptr::null_mut()), 1);
        for batch in data.chunks(BATCH) {
            assert_eq!(EVP_DigestUpdate(ctx, batch.as_ptr().cast(), batch.len()), 1);
        }
        assert_eq!(EVP_DigestFinal_ex(ctx, out.as_mut_ptr(), &mut len), 1);
        EVP_MD_CTX_free(ctx);
    }
    hex::encode(&out[..len as usize])
}

fn openssl(md: openssl::hash::MessageDigest, data: &[u8]) -> String {
    let mut h = openssl::hash::Hasher::new(md).expect("openssl hasher");
    for batch in data.chunks(BATCH) {
        h.update(batch).expect("openssl update");
    }
    hex::encode(h.finish().expect("openssl finish"))
}

fn candidates() -> Vec<Candidate> {
    let sha2_name = if cfg!(feature = "sha2-asm") {
        "RustCrypto sha2 (asm)"
    } else {
        "RustCrypto sha2"
    };
    let mut all = vec![
        Candidate {
            algorithm: "md5",
            implementation: "RustCrypto md-5 (asm)",
            run: rustcrypto::<md5::Md5>,
        },
        Candidate {
            algorithm: "md5",
            implementation: "AWS-LC (aws-lc-sys)",
            run: aws_lc_md5,
        },
        Candidate {
            algorithm: "sha512",
            implementation: sha2_name,
            run: rustcrypto::<sha2::Sha512>,
        },
        Candidate {
            algorithm: "sha512",
            implementation: "AWS-LC (aws-lc-rs)",
            run: |d| aws_lc(&aws_lc_rs::digest::SHA512, d),
        },
        Candidate {
            algorithm: "sha256",
            implementation: sha2_name,
            run: rustcrypto::<sha2::Sha256>,
        },
        Candidate {
            algorithm: "sha256",
            implementation: "AWS-LC (aws-lc-rs)",
            run: |d| aws_lc(&aws_lc_rs::digest::SHA256, d),
        },
    ];
    {
        use openssl::hash::MessageDigest;
        all.extend([
            Candidate {
                algorithm: "md5",
                implementation: "OpenSSL",
                run: |d| openssl(MessageDigest::md5(), d),
            },
            Candidate {
                algorithm: "sha512",
                implementation: "OpenSSL",
                run: |d| openssl(MessageDigest::sha512(), d),
            },
            Candidate {
                algorithm: "sha512",
                implementation: "glance-digest (the server)",
                run: |d| {
                    let mut h = glance_digest::Hasher::new(glance_digest::Algorithm::Sha512);
                    for batch in d.chunks(BATCH) {
                        h.update(batch);
                    }
                    h.finish_hex()
                },
            },
            Candidate {
                algorithm: "sha256",
                implementation: "OpenSSL",
                run: |d| openssl(MessageDigest::sha256(), d),
            },
        ]);
    }
    all.sort_by_key(|c| c.algorithm);
    all
}

/// Best time of `reps` runs, the digest (every run must agree), and how many cores other
/// processes kept busy meanwhile (on average over all runs).
fn best(reps: usize, data: &[u8], run: fn(&[u8]) -> String) -> (Duration, String, f64) {
    let mut best = Duration::MAX;
    let mut digest = String::new();
    let before = busy_ticks();
    let start = Instant::now();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        digest = run(data);
        best = best.min(t.elapsed());
    }
    (best, digest, others_since(before, start))
}

/// Clock ticks (USER_HZ, 100 per second on Linux) the whole machine and this process spent
/// busy so far.
fn busy_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu  user nice system idle iowait irq softirq steal ...
    let machine = stat.lines().next().map_or(0, |l| {
        l.split_whitespace()
            .skip(1)
            .enumerate()
            .filter(|(i, _)| ![3, 4].contains(i))
            .take(8)
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum()
    });
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the parenthesised name: fields 14 and 15 (utime, stime) are the 12th and 13th.
    let own = own.rsplit_once(')').map_or(0, |(_, rest)| {
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    });
    (machine, own)
}

/// Cores other processes kept busy since `before` was taken at `start`.
fn others_since(before: (u64, u64), start: Instant) -> f64 {
    let after = busy_ticks();
    let others = (after.0 - before.0).saturating_sub(after.1 - before.1);
    others as f64 / 100.0 / start.elapsed().as_secs_f64()
}

fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

/// Pseudo-random bytes (xorshift64*), so nothing can shortcut on zeros.
fn data(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn main() {
    let args = Args::parse();
    let data = data(args.size_mib << 20);
    println!(
        "hash_bench: {} MiB in 1 MiB updates, best of {}; {} cores; a busy `other processes` \
         (a build, a test run) makes the figures low",
        args.size_mib,
        args.reps,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut expected: Vec<(&str, String)> = Vec::new();
    // The fastest candidate of each algorithm so far, with its rate.
    let mut fastest: Vec<(Candidate, f64)> = Vec::new();
    for c in candidates() {
        let (t, digest, others) = best(args.reps, &data, c.run);
        let rate = mbps(data.len(), t);
        let agrees = match expected.iter().find(|(a, _)| *a == c.algorithm) {
            Some((_, want)) => *want == digest,
            None => {
                expected.push((c.algorithm, digest));
                true
            }
        };
        println!(
            "  {:<7} {:<26} {rate:>7.0} MB/s   other processes {others:.2} cores{}",
            c.algorithm,
            c.implementation,
            if agrees { "" } else { "  DIGEST DIFFERS" }
        );
        match fastest.iter_mut().find(|(f, _)| f.algorithm == c.algorithm) {
            Some((_, r)) if *r >= rate => {}
            Some(slot) => *slot = (c, rate),
            None => fastest.push((c, rate)),
        }
    }
    // The upload's ceiling: the fastest md5 and the fastest sha512, each on its own thread.
    let pick = |a: &str| {
        fastest
            .iter()
            .find(|(f, _)| f.algorithm == a)
            .map(|(f, _)| f)
    };
    if let (Some(md5), Some(sha512)) = (pick("md5"), pick("sha512")) {
        let before = busy_ticks();
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| (md5.run)(&data));
            s.spawn(|| (sha512.run)(&data));
        });
        let elapsed = start.elapsed();
        println!(
            "  md5 ({}) || sha512 ({}) on two threads: {:.0} MB/s   other processes {:.2} cores",
            md5.implementation,
            sha512.implementation,
            mbps(data.len(), elapsed),
            others_since(before, start)
        );
    }
}
