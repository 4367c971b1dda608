//! Import's test harness: a small HTTP server for web-download, and the calls every
//! import test makes (stage, import, wait for the task, read the image back).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glance_tests::{digests, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// A small HTTP server for web-download.

/// What the test server serves at each path.
#[derive(Clone)]
pub enum Route {
    /// 200 with the bytes and a Content-Length.
    Data(Arc<Vec<u8>>),
    /// 200 with the bytes and no length: the body ends when the connection closes.
    Unsized(Arc<Vec<u8>>),
    /// 200, the bytes in `chunks` pieces with `pause` between them.
    Slow {
        data: Arc<Vec<u8>>,
        chunks: usize,
        pause: Duration,
    },
    /// 302 to the URL.
    Redirect(String),
    /// 200 promising more bytes than it sends, then silence with the connection open.
    Stall,
}

pub struct Origin {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

type Mutex<T> = std::sync::Mutex<T>;

impl Origin {
    pub async fn start(routes: HashMap<&'static str, Route>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<HashMap<String, Route>> =
            Arc::new(routes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let hits = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let _ = match routes.get(&path) {
                        None => {
                            socket
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await
                        }
                        Some(Route::Data(data)) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                data.len()
                            );
                            socket.write_all(head.as_bytes()).await.unwrap();
                            socket.write_all(data).await
                        }
                        Some(Route::Unsized(data)) => {
                            socket
                                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                                .await
                                .unwrap();
                            socket.write_all(data).await
                        }
                        Some(Route::Slow {
                            data,
                            chunks,
                            pause,
                        }) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                data.len()
                            );
                            socket.write_all(head.as_bytes()).await.unwrap();
                            let size = data.len().div_ceil(*chunks);
                            for piece in data.chunks(size) {
                                if socket.write_all(piece).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(*pause).await;
                            }
                            Ok(())
                        }
                        Some(Route::Stall) => {
                            socket
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nsome bytes")
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok(())
                        }
                        Some(Route::Redirect(to)) => {
                            let head = format!(
                                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            socket.write_all(head.as_bytes()).await
                        }
                    };
                    let _ = socket.shutdown().await;
                });
            }
        });
        Origin { port, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// A few MiB of bytes that are not all alike.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

pub async fn new_image(app: &TestApp) -> String {
    let img = app
        .create_image(json!({"name": "imp", "disk_format": "raw", "container_format": "bare"}))
        .await;
    img["id"].as_str().unwrap().to_owned()
}

pub async fn stage(app: &TestApp, id: &str, data: Vec<u8>) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v2/images/{id}/stage")))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
}

pub async fn import(base: &str, id: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v2/images/{id}/import"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn image_at(base: &str, id: &str) -> Value {
    let res = reqwest::get(format!("{base}/v2/images/{id}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The image's import tasks, newest first.
pub async fn tasks_at(base: &str, id: &str) -> Vec<Value> {
    let res = reqwest::get(format!("{base}/v2/images/{id}/tasks"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    doc["tasks"].as_array().unwrap().clone()
}

/// Polls until the image's latest import task has finished, and returns it with the image.
pub async fn finished(base: &str, id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = tasks_at(base, id).await;
        if let Some(task) = tasks.first() {
            if matches!(task["status"].as_str(), Some("success" | "failure")) {
                return (task.clone(), image_at(base, id).await);
            }
        }
        assert!(
            Instant::now() < deadline,
            "import of {id} did not finish: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn download(base: &str, id: &str) -> Vec<u8> {
    let res = reqwest::get(format!("{base}/v2/images/{id}/file"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

pub fn assert_active_with(image: &Value, data: &[u8]) {
    let (md5, sha512) = digests(data);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], sha512.as_str());
    assert_eq!(image["size"], data.len());
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
}

/// Web-download may reach the test server on its random port.
pub const ANY_PORT: (&str, &str, &str) = ("import_filtering_opts", "allowed_ports", "");
