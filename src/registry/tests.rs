//! The client against a scripted registry on 127.0.0.1 that misbehaves:
//! the bearer-token flow, credentials kept from other hosts, oversized and
//! altered answers, and redirects that would downgrade to plain HTTP.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// One scripted answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);
/// The requests a scripted server saw: path and headers.
type Seen = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// A server that answers each request by `script(path, headers)` and
/// records the requests it saw.
struct Scripted {
    host: String,
    seen: Seen,
}

impl Scripted {
    async fn start(
        script: impl Fn(&str, &BTreeMap<String, String>, &str) -> Answer + Send + Sync + 'static,
    ) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let (seen2, host2) = (seen.clone(), host.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (script, seen, host) = (script.clone(), seen2.clone(), host2.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(head) = read_head(&mut sock).await else {
                            return;
                        };
                        let text = String::from_utf8_lossy(&head).into_owned();
                        let mut lines = text.lines();
                        let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
                        let headers: BTreeMap<String, String> = lines
                            .filter_map(|l| l.split_once(": "))
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                            .collect();
                        seen.lock().unwrap().push((path.clone(), headers.clone()));
                        let (status, hs, body) = script(&path, &headers, &host);
                        let mut out =
                            format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                        for (k, v) in hs {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        if sock.write_all(out.as_bytes()).await.is_err()
                            || sock.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Scripted { host, seen }
    }

    fn reference(&self, repo: &str, digest: &str) -> Reference {
        Reference::parse(&format!("{}/{repo}@{digest}", self.host)).unwrap()
    }
}

fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", crate::encoding::hex(&Sha256::digest(b)))
}

fn creds_for(host: &str) -> Credentials {
    let dir = std::env::temp_dir().join(format!(
        "vigil-reg-{}-{}",
        std::process::id(),
        host.replace([':', '.'], "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("auth.json");
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "robot:hunter2");
    std::fs::write(
        &p,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let c = Credentials::from_file(&p).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    c
}

#[tokio::test]
async fn the_bearer_flow_sends_credentials_to_the_realm_and_the_token_to_the_registry_only() {
    let blob = b"layer bytes".to_vec();
    let d = digest_of(&blob);
    let other = Scripted::start(|_, _, _| (200, vec![], b"layer bytes".to_vec())).await;
    let other_host = other.host.clone();
    let (blob2, d2) = (blob.clone(), d.clone());
    let reg = Scripted::start(move |path, h, host| {
        if path.starts_with("/token?") {
            assert!(path.contains("scope=repository%3Ateam%2Fvigil%3Apull"), "{path}");
            assert_eq!(h.get("authorization").map(String::as_str), Some("Basic cm9ib3Q6aHVudGVyMg=="));
            return (200, vec![], br#"{"token":"tok-123"}"#.to_vec());
        }
        if h.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
            let challenge = format!(r#"Bearer realm="http://{host}/token",service="test",scope="repository:team/vigil:pull""#);
            return (401, vec![("www-authenticate".into(), challenge)], br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec());
        }
        if path.ends_with(&d2) && path.contains("/blobs/") {
            // The blob store is elsewhere.
            return (307, vec![("location".into(), format!("http://{other_host}/store/blob"))], vec![]);
        }
        (200, vec![], blob2.clone())
    })
    .await;
    let client = Client::new(
        &[reg.host.clone(), other.host.clone()],
        creds_for(&reg.host),
    )
    .unwrap();
    let image = reg.reference("team/vigil", &d);
    assert_eq!(client.blob(&image, &d, 1024).await.unwrap(), blob);
    // The token was reused: one challenge, one token request.
    assert_eq!(client.blob(&image, &d, 1024).await.unwrap(), blob);
    let seen = reg.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|(p, _)| p.starts_with("/token")).count(),
        1,
        "{seen:?}"
    );
    // The blob store never saw the registry's token or the password.
    for (_, h) in other.seen.lock().unwrap().iter() {
        assert!(!h.contains_key("authorization"), "{h:?}");
    }
}

#[tokio::test]
async fn oversized_altered_and_downgraded_answers_are_refused() {
    let big = vec![b' '; (MAX_MANIFEST + 1) as usize];
    let good = b"{}".to_vec();
    let d_good = digest_of(&good);
    let reg = Scripted::start(move |path, _, _| {
        if path.contains("/manifests/big") {
            (
                200,
                vec![(
                    "content-type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                big.clone(),
            )
        } else if path.contains("/blobs/") {
            (200, vec![], b"{ }".to_vec())
        } else if path.contains("/manifests/downgrade") {
            (
                302,
                vec![("location".into(), "http://evil.example/x".into())],
                vec![],
            )
        } else if path.contains("/referrers/") {
            (
                404,
                vec![],
                br#"{"errors":[{"code":"NAME_UNKNOWN\u001b[2J"}]}"#.to_vec(),
            )
        } else {
            (
                404,
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN\u001b[2J"}]}"#.to_vec(),
            )
        }
    })
    .await;
    let client = Client::new(std::slice::from_ref(&reg.host), Credentials::default()).unwrap();
    let image = reg.reference("vigil", &d_good);
    let e = client.manifest(&image, "big").await.unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
    let e = client.blob(&image, &d_good, 1024).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let e = client.manifest(&image, "downgrade").await.unwrap_err();
    assert!(e.to_string().contains("not HTTPS"), "{e}");
    let e = client.manifest(&image, "missing").await.unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("MANIFEST_UNKNOWN") && !e.to_string().contains('\u{1b}'),
        "{e}"
    );
    assert!(
        client
            .referrers(&image, &d_good, "x")
            .await
            .unwrap()
            .is_none(),
        "404: no referrers API"
    );
    let e = client
        .blob(&image, "sha256:../../etc", 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a sha256 digest"), "{e}");
}

#[tokio::test]
async fn without_credentials_a_challenge_is_answered_with_what_to_do() {
    let reg = Scripted::start(|path, _, host| {
        if path.starts_with("/token") {
            return (401, vec![], vec![]);
        }
        (
            401,
            vec![(
                "www-authenticate".into(),
                format!(r#"Bearer realm="http://{host}/token""#),
            )],
            vec![],
        )
    })
    .await;
    let client = Client::new(std::slice::from_ref(&reg.host), Credentials::default()).unwrap();
    let e = client
        .manifest(&reg.reference("vigil", &digest_of(b"x")), "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Denied { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("REGISTRY_AUTH_FILE"), "{e}");
}

/// One request's head (through the blank line), or `None` at the end of
/// the connection.
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match sock.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A raw server on 127.0.0.1 for bodies the scripted one cannot send: it
/// reads one request per connection and hands the socket and the request
/// line to `serve`. Used by the image tests too.
pub(crate) async fn raw_server<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let serve = serve.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut sock).await else {
                    return;
                };
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                serve(sock, line).await;
            });
        }
    });
    host
}

/// Answer 200 with a chunked body of 4 KiB chunks that never ends (until
/// 1 GiB, or the client hangs up), counting the bytes sent.
pub(crate) async fn endless_chunks(
    sock: &mut tokio::net::TcpStream,
    sent: &std::sync::atomic::AtomicU64,
) {
    let _ = sock
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await;
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
    for _ in 0..(1 << 18) {
        if sock.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        sent.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_blob_is_read_no_further_than_its_descriptor_says() {
    // An endless chunked body: the client must stop at the size it was
    // told, not at the 32 GiB blob cap.
    let host = raw_server(|mut sock, _| async move {
        endless_chunks(&mut sock, &std::sync::atomic::AtomicU64::new(0)).await;
    })
    .await;
    let client = Client::new(std::slice::from_ref(&host), Credentials::default()).unwrap();
    let image = Reference::parse(&format!("{host}/vigil@{}", digest_of(b"x"))).unwrap();
    let mut sink = Vec::new();
    let e = client
        .blob_to(&image, &digest_of(b"y"), 417, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    assert!(sink.len() <= 417 + 4096, "read {} bytes", sink.len());
}

#[tokio::test]
async fn a_slow_sender_is_cut_at_the_overall_deadline() {
    // One byte every 200 ms: never a stall of 30 s between chunks, yet the
    // request must end at its overall deadline.
    let host = raw_server(|mut sock, _| async move {
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            .await;
        for _ in 0..100_000 {
            if sock.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    let client = Client::new(std::slice::from_ref(&host), Credentials::default())
        .unwrap()
        .with_deadlines(Deadlines {
            request: std::time::Duration::from_secs(1),
            min_rate: 1 << 20,
        });
    let image = Reference::parse(&format!("{host}/vigil@{}", digest_of(b"x"))).unwrap();
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let e = client
        .blob_to(&image, &digest_of(b"y"), 100_000, &mut sink)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.to_string().contains("deadline"), "{e}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn a_plain_http_registry_is_named_as_such() {
    // What Go's net/http (docker-registry's server) answers a TLS
    // handshake with.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut b = [0u8; 512];
            let _ = sock.read(&mut b).await;
            let _ = sock
                .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                .await;
        }
    });
    // Not listed as insecure: the client speaks TLS to a plain HTTP server.
    let client = Client::new(&[], Credentials::default()).unwrap();
    let image = Reference::parse(&format!("{host}/vigil@{}", digest_of(b"{}"))).unwrap();
    let e = client.manifest(&image, "v1").await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("plain HTTP") && text.contains("--insecure-registry"),
        "{text}"
    );
}
