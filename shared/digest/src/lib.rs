//! The digests Glance records for image data: `checksum` (md5) and the multihash named by
//! `hashing_algorithm` (`os_hash_algo`, sha512 by default), computed on uploads and imports
//! and when the image cache verifies an entry.
//!
//! Each digest is the fastest implementation measured on our machines
//! (`cargo run --release -p glance-bench --bin hash_bench`): the SHA family from OpenSSL,
//! md5 from RustCrypto's md-5 with its assembly (OpenSSL's md5 is no faster). A digest is one
//! stream of bytes on one thread; run md5 and the multihash on two threads to use two cores.

use std::fmt;
use std::str::FromStr;

/// An algorithm Glance may record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The name Glance uses (`os_hash_algo`, `hashing_algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name this module does not compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown hashing algorithm {:?}", self.0)
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(UnknownAlgorithm(s.to_owned())),
        })
    }
}

/// One digest being computed.
pub struct Hasher(State);

enum State {
    Md5(md5::Md5),
    Sha1(openssl::sha::Sha1),
    Sha256(openssl::sha::Sha256),
    Sha384(openssl::sha::Sha384),
    Sha512(openssl::sha::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        Self(match algorithm {
            Algorithm::Md5 => State::Md5(<md5::Md5 as md5::Digest>::new()),
            Algorithm::Sha1 => State::Sha1(openssl::sha::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(openssl::sha::Sha256::new()),
            Algorithm::Sha384 => State::Sha384(openssl::sha::Sha384::new()),
            Algorithm::Sha512 => State::Sha512(openssl::sha::Sha512::new()),
        })
    }

    pub fn md5() -> Self {
        Self::new(Algorithm::Md5)
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Md5(h) => md5::Digest::update(h, data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha384(h) => h.update(data),
            State::Sha512(h) => h.update(data),
        }
    }

    /// The digest in lowercase hex, as Glance records it.
    pub fn finish_hex(self) -> String {
        match self.0 {
            State::Md5(h) => hex::encode(md5::Digest::finalize(h)),
            State::Sha1(h) => hex::encode(h.finish()),
            State::Sha256(h) => hex::encode(h.finish()),
            State::Sha384(h) => hex::encode(h.finish()),
            State::Sha512(h) => hex::encode(h.finish()),
        }
    }
}

/// The digest of `data` in one call.
pub fn hex_digest(algorithm: Algorithm, data: &[u8]) -> String {
    let mut h = Hasher::new(algorithm);
    h.update(data);
    h.finish_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 and RFC 1321's digests of "abc", fed in two pieces.
    #[test]
    fn every_algorithm_gives_the_published_digest_of_abc() {
        let cases = [
            (Algorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Algorithm::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                Algorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                Algorithm::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algorithm, want) in cases {
            let mut h = Hasher::new(algorithm);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish_hex(), want, "{algorithm}");
        }
    }

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for a in [
            Algorithm::Md5,
            Algorithm::Sha1,
            Algorithm::Sha256,
            Algorithm::Sha384,
            Algorithm::Sha512,
        ] {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(
            "sha3_512".parse::<Algorithm>(),
            Err(UnknownAlgorithm("sha3_512".into()))
        );
    }
}
