//! The means of the faults: small file systems to fill, a slow origin for web-download, and
//! finding which process is doing a piece of work.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tmpfs of a given size mounted on a directory, unmounted (lazily) when dropped. The
/// campaign runs as root under `scripts/test.sh`; without the right to mount it fails.
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> Self {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "the fault campaign fills small file systems and must mount a tmpfs (run it as \
             root, as scripts/test.sh in CI does): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Writes a file that takes every free byte; removing it frees them again.
    pub fn fill(&self) -> Filler {
        let path = self.dir.join(".campaign-filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        // The last partial megabyte too.
        while file.write_all(&chunk[..4096]).is_ok() {}
        while file.write_all(&chunk[..1]).is_ok() {}
        Filler(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The file that fills a [`SmallDisk`]; removed when dropped.
pub struct Filler(PathBuf);

impl Drop for Filler {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).unwrap();
    }
}

/// Runs `psql` on the test server's maintenance database; it must succeed.
pub fn psql(sql: &str) {
    let url = std::env::var("GLANCE_TEST_POSTGRES_URL").expect("GLANCE_TEST_POSTGRES_URL");
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c", sql])
        .output()
        .expect("cannot run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Database `name` moved onto a small tmpfs of its own (a tablespace; the server's WAL
/// stays where it was), so that filling it fills only that database's volume. Moved back
/// and dropped with the tablespace when dropped.
pub struct DatabaseVolume {
    pub disk: SmallDisk,
    _parent: tempfile::TempDir,
    database: String,
    tablespace: String,
}

impl DatabaseVolume {
    pub fn new(database: &str, size: &str) -> Self {
        let parent = tempfile::tempdir().unwrap();
        chmod_755(parent.path());
        let dir = parent.path().join("volume");
        std::fs::create_dir(&dir).unwrap();
        let disk = SmallDisk::mount(&dir, size);
        // PostgreSQL runs as the postgres user when the tests run as root.
        if Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let tablespace = format!("{database}_volume");
        psql(&format!(
            "CREATE TABLESPACE \"{tablespace}\" LOCATION '{}'",
            dir.display()
        ));
        psql(&format!(
            "ALTER DATABASE \"{database}\" SET TABLESPACE \"{tablespace}\""
        ));
        Self {
            disk,
            _parent: parent,
            database: database.to_owned(),
            tablespace,
        }
    }
}

impl Drop for DatabaseVolume {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ));
        psql(&format!(
            "DROP TABLESPACE IF EXISTS \"{}\"",
            self.tablespace
        ));
    }
}

fn chmod_755(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An HTTP origin for web-download that serves the same bytes at every path, slowly: in
/// `chunks` pieces with `pause` between them.
pub struct SlowOrigin {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
}

impl SlowOrigin {
    pub async fn start(data: Arc<Vec<u8>>, chunks: usize, pause: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (data, counted) = (data.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let header = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                        data.len()
                    );
                    if socket.write_all(header.as_bytes()).await.is_err() {
                        return;
                    }
                    for piece in data.chunks(data.len().div_ceil(chunks)) {
                        if socket.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(pause).await;
                    }
                });
            }
        });
        Self { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The inodes of the established TCP connections to `port` on loopback.
fn connections_to(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(remote) = cols.get(2) else { continue };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && cols.get(3) == Some(&"01") {
                inodes.push(cols[9].to_owned());
            }
        }
    }
    inodes
}

/// Which of `pids` holds a TCP connection to `port` on loopback.
pub fn connected_to(pids: &[u32], port: u16) -> Option<u32> {
    let inodes = connections_to(port);
    pids.iter().copied().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|link| {
                        let link = link.to_string_lossy();
                        inodes.iter().any(|i| link == format!("socket:[{i}]"))
                    })
                })
            })
            .unwrap_or(false)
    })
}

/// The pids in the names of the incomplete cache files of image `id` (`<id>.<pid>-<nonce>`).
pub fn cache_writers(incomplete: &Path, id: &str) -> Vec<u32> {
    std::fs::read_dir(incomplete)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let rest = name.strip_prefix(&format!("{id}."))?;
                    rest.split('-').next()?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}
