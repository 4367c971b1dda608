//! Ceilings measured in the same run as the figures they bound: hashing and disk for the
//! upload, a plain `sendfile` over loopback for the download.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use glance_digest::{Algorithm, Hasher};

/// `len` pseudo-random bytes from xorshift64*: incompressible enough that no layer can
/// cheat on zeros, and generated far faster than anything it is used to measure.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut words = data.chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&next().to_le_bytes());
    }
    let tail = words.into_remainder();
    let last = next().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    data
}

pub struct Hashes {
    pub md5: String,
    pub sha512: String,
    pub md5_time: Duration,
    pub sha512_time: Duration,
}

impl Hashes {
    /// Both digests ran at once, so the pair is as fast as the slower one.
    pub fn wall(&self) -> Duration {
        self.md5_time.max(self.sha512_time)
    }
}

/// md5 and sha512 of `data`, each on its own thread, as the server computes them (the same
/// implementations: `glance-digest`).
pub fn hash_in_parallel(data: &[u8]) -> Hashes {
    // 64 KiB updates, the same granularity the server sees from a glanceclient upload.
    fn timed(algorithm: Algorithm, data: &[u8]) -> (String, Duration) {
        let start = Instant::now();
        let mut h = Hasher::new(algorithm);
        for chunk in data.chunks(64 * 1024) {
            h.update(chunk);
        }
        let digest = h.finish_hex();
        (digest, start.elapsed())
    }
    std::thread::scope(|s| {
        let md5 = s.spawn(|| timed(Algorithm::Md5, data));
        let sha = s.spawn(|| timed(Algorithm::Sha512, data));
        let (md5, md5_time) = md5.join().expect("md5 thread");
        let (sha512, sha512_time) = sha.join().expect("sha512 thread");
        Hashes {
            md5,
            sha512,
            md5_time,
            sha512_time,
        }
    })
}

/// The faster of two measurements of the same digests.
pub fn best(a: Hashes, b: Hashes) -> Hashes {
    if a.wall() <= b.wall() {
        a
    } else {
        b
    }
}

/// Sequential write of `data` to `path` in 1 MiB writes, fsync included in the time.
pub fn disk_write(path: &Path, data: &[u8]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut f = File::create(path).with_context(|| format!("create {}", path.display()))?;
    for chunk in data.chunks(1 << 20) {
        f.write_all(chunk)?;
    }
    f.sync_all()?;
    Ok(start.elapsed())
}

/// A one-shot HTTP server on loopback that answers its first connection with `file` via
/// `sendfile(2)`: the cheapest way the kernel can move those bytes to a socket.
pub fn sendfile_server(
    file: PathBuf,
) -> anyhow::Result<(SocketAddr, std::thread::JoinHandle<anyhow::Result<u64>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handle = std::thread::spawn(move || -> anyhow::Result<u64> {
        let (mut sock, _) = listener.accept()?;
        // Read the request head (small, one packet) before answering.
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = std::io::Read::read(&mut sock, &mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let f = File::open(&file)?;
        let len = f.metadata()?.len();
        write!(
            sock,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )?;
        let mut offset: libc::off_t = 0;
        while (offset as u64) < len {
            let left = (len - offset as u64).min(1 << 30) as usize;
            let n = unsafe { libc::sendfile(sock.as_raw_fd(), f.as_raw_fd(), &mut offset, left) };
            if n < 0 {
                return Err(std::io::Error::last_os_error()).context("sendfile");
            }
            if n == 0 {
                break;
            }
        }
        Ok(offset as u64)
    });
    Ok((addr, handle))
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_bytes_are_deterministic_and_not_zero() {
        let a = super::random_bytes(1001);
        assert_eq!(a, super::random_bytes(1001));
        assert!(a.iter().filter(|&&b| b == 0).count() < 20);
    }

    #[tokio::test]
    async fn the_sendfile_server_delivers_the_whole_file_to_the_http_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = super::random_bytes(3 << 20 | 17);
        std::fs::write(&path, &data).unwrap();
        let (addr, handle) = super::sendfile_server(path).unwrap();
        let mut conn = crate::http::Conn::open(addr).await.unwrap();
        let resp = conn
            .send(hyper::Method::GET, "/", None, crate::http::empty())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let n = crate::http::drain(resp.into_body()).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(handle.join().unwrap().unwrap(), n);
    }
}
