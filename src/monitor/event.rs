//! Reading the API server's audit log: `audit.k8s.io/v1` Event JSON lines,
//! plain or gzip (log backends rotate and compress), streamed line by line
//! with a cap on each line, so a log of any size needs only the memory of
//! the events kept.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The longest event line read (a RequestResponse event carries whole
/// objects; a pod is far smaller). Longer lines are counted as unreadable.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The audit annotation a TokenRequest event carries (KEP-4193).
pub(crate) const ISSUED_CREDENTIAL_ID: &str = "authentication.kubernetes.io/issued-credential-id";
/// The `user.extra` key of a request made with a token that has a `jti`.
pub(crate) const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// One audit event: the fields `audit-check` reads. Others are ignored (the
/// format grows across Kubernetes versions).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    /// `Event` (webhook sinks may drop it from each line).
    #[serde(default)]
    pub kind: String,
    /// `audit.k8s.io/v1` (webhook sinks may drop it from each line).
    #[serde(default)]
    pub api_version: String,
    /// Shared by every stage of one request.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`.
    pub stage: String,
    /// Path and query as the client sent them.
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    /// Kubernetes verb.
    #[serde(default)]
    pub verb: String,
    /// The authenticated user.
    #[serde(default)]
    pub user: UserInfo,
    /// The user impersonated, if any.
    #[serde(default)]
    pub impersonated_user: Option<UserInfo>,
    /// X-Forwarded-For, X-Real-Ip, then the peer address.
    #[serde(rename = "sourceIPs", default)]
    pub source_ips: Vec<String>,
    /// The client's User-Agent.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The object the request is about.
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    /// The response code (absent at RequestReceived).
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    /// The ephemeral containers (name, image) of the request object, at
    /// Request level and above; `None` when no object was logged. Only
    /// these are kept: the rest of an object the client sent never stays
    /// in memory.
    #[serde(rename = "requestObject", default, deserialize_with = "containers")]
    pub request_containers: Option<Vec<(String, String)>>,
    /// The same of the response object, at RequestResponse level.
    #[serde(rename = "responseObject", default, deserialize_with = "containers")]
    pub response_containers: Option<Vec<(String, String)>>,
    /// When the request arrived.
    #[serde(default)]
    pub request_received_timestamp: Option<DateTime<Utc>>,
    /// When this stage was reached.
    #[serde(default)]
    pub stage_timestamp: Option<DateTime<Utc>>,
    /// Audit annotations (authorization decision, issued credential id).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `user` or `impersonatedUser`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct UserInfo {
    /// Username.
    #[serde(default)]
    pub username: String,
    /// Extra attributes (credential id, pod binding).
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `objectRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectRef {
    /// Plural resource.
    #[serde(default)]
    pub resource: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Subresource (`exec`, `token`, `ephemeralcontainers`).
    #[serde(default)]
    pub subresource: String,
}

/// `responseStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ResponseStatus {
    /// HTTP status code.
    #[serde(default)]
    pub code: u16,
}

impl Event {
    /// The address the request came from, as the API server saw it.
    pub(crate) fn peer(&self) -> &str {
        // "All but the last IP can be arbitrarily set by the client"
        // (audit.k8s.io/v1 `Event.SourceIPs`): the last is the address the
        // API server saw (apimachinery `net.SourceIPs` always appends it).
        self.source_ips.last().map_or("", String::as_str)
    }

    /// What the API server itself set about who made this request and
    /// how: user, verb, URI, credential. Stages of one request agree on it;
    /// two requests sharing a client-chosen `auditID` need not.
    pub(crate) fn fingerprint(&self) -> (&str, &str, &str, Option<&str>) {
        (
            self.user.username.as_str(),
            self.verb.as_str(),
            self.request_uri.as_str(),
            self.credential_id(),
        )
    }

    /// The identity the request acted as (the impersonated user, if any).
    pub(crate) fn acting_user(&self) -> &str {
        self.impersonated_user
            .as_ref()
            .map_or(self.user.username.as_str(), |u| u.username.as_str())
    }

    /// The credential id of the token that authenticated the request.
    pub(crate) fn credential_id(&self) -> Option<&str> {
        self.user
            .extra
            .get(CREDENTIAL_ID)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// The response code, 0 when the event has none.
    pub(crate) fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    /// When the request arrived (the stage time for events without one).
    pub(crate) fn time(&self) -> Option<DateTime<Utc>> {
        self.request_received_timestamp.or(self.stage_timestamp)
    }

    /// `resource` or `resource/subresource`.
    pub(crate) fn resource(&self) -> String {
        match &self.object_ref {
            Some(o) if !o.subresource.is_empty() => format!("{}/{}", o.resource, o.subresource),
            Some(o) => o.resource.clone(),
            None => String::new(),
        }
    }

    /// The `command` query parameters of an exec, in order.
    pub(crate) fn exec_command(&self) -> Vec<String> {
        let query = self.request_uri.split_once('?').map_or("", |(_, q)| q);
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| *k == "command")
            .map(|(_, v)| form_decode(v))
            .collect()
    }

    /// Images of the ephemeral containers a patch adds: from the request
    /// object when the level keeps it, else the `vigil-*` containers of
    /// the response object. `None` when the event has neither.
    pub(crate) fn ephemeral_images(&self) -> Option<Vec<(String, String)>> {
        if let Some(r) = &self.request_containers {
            return Some(r.clone());
        }
        self.response_containers.as_ref().map(|r| {
            r.iter()
                .filter(|(name, _)| name.starts_with("vigil-"))
                .cloned()
                .collect()
        })
    }
}

/// Longest container name or image kept from an object (a name is at most
/// 63 bytes, an image reference a few hundred): longer text is cut, so
/// what the client sends cannot make an event large.
const MAX_CONTAINER_TEXT: usize = 512;

/// Read an audit object (any JSON) and keep only its
/// `spec.ephemeralContainers[].{name,image}`.
fn containers<'de, D>(d: D) -> Result<Option<Vec<(String, String)>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(v) = Option::<serde_json::Value>::deserialize(d)? else {
        return Ok(None);
    };
    let text = |c: &serde_json::Value, k: &str| {
        let s = c[k].as_str().unwrap_or_default();
        if s.len() > MAX_CONTAINER_TEXT {
            crate::safeio::excerpt(s, MAX_CONTAINER_TEXT)
        } else {
            s.to_string()
        }
    };
    Ok(Some(
        v["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (text(c, "name"), text(c, "image")))
            .collect(),
    ))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space; a `%`
/// not followed by two hex digits stays as it is).
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What reading one file found, besides its events.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileSummary {
    /// The path as given.
    pub path: String,
    /// sha256 of the bytes on disk (compressed, for a gzip file).
    pub sha256: String,
    /// Whether it was gzip.
    pub gzip: bool,
    /// Lines read.
    pub lines: u64,
    /// Audit events among them.
    pub events: u64,
    /// Lines that are not audit events (or over [`MAX_EVENT_BYTES`]).
    pub unreadable: u64,
    /// The file ends inside a gzip member or a line (cut while rotating).
    pub truncated: bool,
    /// Earliest and latest event time.
    pub first: Option<DateTime<Utc>>,
    /// See `first`.
    pub last: Option<DateTime<Utc>>,
}

/// A file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {reason}")]
pub struct ReadError {
    /// The path (escaped for the terminal).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    /// Bytes read from the file.
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// How far a gzip file may inflate: JSON lines compress 10 to 30 times; a
/// file that inflates over [`MAX_INFLATION`] times its size (past the
/// first 64 MiB) is a bomb, refused before it floods.
const MAX_INFLATION: u64 = 200;

/// Counts what a decoder inflates, and stops a bomb.
struct Inflated<R> {
    inner: R,
    out: u64,
    compressed: Rc<Cell<u64>>,
    bomb: Rc<Cell<bool>>,
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > (64 << 20).max(MAX_INFLATION * self.compressed.get()) {
            self.bomb.set(true);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "inflates too far",
            ));
        }
        Ok(n)
    }
}

/// Stream the events of one file (plain or gzip) to `each`. The file must
/// be a regular file: a FIFO or device is refused before it is read.
pub(crate) fn read_file(
    path: &Path,
    each: &mut dyn FnMut(Event),
) -> Result<FileSummary, ReadError> {
    let shown = crate::safeio::printable(&path.display().to_string()).into_owned();
    let err = |reason: String| ReadError {
        path: shown.clone(),
        reason,
    };
    let file =
        crate::safeio::open_regular(path, "audit log").map_err(|e| err(e.problem.to_string()))?;
    let compressed = Rc::new(Cell::new(0));
    let bomb = Rc::new(Cell::new(false));
    let mut hashing = BufReader::new(Hashing {
        inner: file,
        hash: Sha256::new(),
        read: compressed.clone(),
    });
    let gzip = hashing
        .fill_buf()
        .map_err(|e| err(crate::safeio::io_reason(&e)))?
        .starts_with(&[0x1f, 0x8b]);
    let mut summary = FileSummary {
        path: shown.clone(),
        gzip,
        ..FileSummary::default()
    };
    let reader: Box<dyn BufRead + '_> = if gzip {
        Box::new(BufReader::new(Inflated {
            inner: flate2::bufread::MultiGzDecoder::new(&mut hashing),
            out: 0,
            compressed,
            bomb: bomb.clone(),
        }))
    } else {
        Box::new(&mut hashing)
    };
    read_lines(reader, &mut summary, each);
    if bomb.get() {
        return Err(err(format!(
            "inflates to over {MAX_INFLATION} times its size: refused as a gzip bomb (audit logs compress far less)"
        )));
    }
    // Hash what is left unread (a gzip file read to a truncation point).
    let _ = std::io::copy(&mut hashing, &mut std::io::sink());
    summary.sha256 = crate::encoding::hex(&hashing.into_inner().hash.finalize());
    // A torn last line alone (a live file just rotated) is not a file of
    // something else: it is reported as the gap it is.
    if summary.events == 0 && summary.lines > u64::from(summary.truncated) {
        return Err(err(format!(
            "none of its {} lines is an audit.k8s.io/v1 Event (is it the API server's --audit-log-path file?)",
            summary.lines
        )));
    }
    Ok(summary)
}

/// A webhook's batch of events (`audit.k8s.io/v1` EventList).
#[derive(Deserialize)]
struct EventList {
    kind: String,
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    items: Vec<Event>,
}

/// The shape of an `audit.k8s.io/v1` Event: its kind and version when the
/// line carries them (webhook sinks may write events without), an audit
/// ID and a known stage.
fn is_event(e: &Event) -> bool {
    matches!(e.kind.as_str(), "" | "Event")
        && matches!(e.api_version.as_str(), "" | "audit.k8s.io/v1")
        && !e.audit_id.is_empty()
        && matches!(
            e.stage.as_str(),
            "RequestReceived" | "ResponseStarted" | "ResponseComplete" | "Panic"
        )
}

fn read_lines(mut reader: impl BufRead, summary: &mut FileSummary, each: &mut dyn FnMut(Event)) {
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut over = false;
        // Read one line, keeping at most MAX_EVENT_BYTES of it.
        loop {
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    summary.truncated = true;
                    return;
                }
            };
            if buf.is_empty() {
                if !line.is_empty() || over {
                    // A last line without its newline: cut mid-write.
                    summary.truncated = true;
                    summary.lines += 1;
                    summary.unreadable += 1;
                }
                return;
            }
            let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            if line.len() + chunk.len() > MAX_EVENT_BYTES {
                over = true;
            } else if !over {
                line.extend_from_slice(chunk);
            }
            let used = done.unwrap_or(buf.len());
            reader.consume(used);
            if done.is_some() {
                break;
            }
        }
        summary.lines += 1;
        if over {
            summary.unreadable += 1;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut take = |e: Event| {
            summary.events += 1;
            if let Some(t) = e.time() {
                summary.first = Some(summary.first.map_or(t, |f| f.min(t)));
                summary.last = Some(summary.last.map_or(t, |l| l.max(t)));
            }
            each(e);
        };
        // A webhook batch written as it was posted: `{"kind":"EventList",…}`.
        let list = line.windows(11).any(|w| w == b"\"EventList\"");
        if list {
            match serde_json::from_slice::<EventList>(&line) {
                Ok(l)
                    if l.kind == "EventList"
                        && matches!(l.api_version.as_str(), "" | "audit.k8s.io/v1") =>
                {
                    for e in l.items {
                        if is_event(&e) {
                            take(e);
                        } else {
                            summary.unreadable += 1;
                        }
                    }
                }
                _ => summary.unreadable += 1,
            }
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(e) if is_event(&e) => take(e),
            _ => summary.unreadable += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_commands_are_form_decoded_in_order() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/n/pods/p/exec?command=%2Fbin%2Fsh&command=-c&command=echo+hi%26bye&container=c&stdout=true"
        }))
        .unwrap();
        assert_eq!(e.exec_command(), vec!["/bin/sh", "-c", "echo hi&bye"]);
        assert_eq!(form_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_gzip_bomb_is_refused_before_it_floods() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("vigil-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bomb.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..72 {
            gz.write_all(&zeros).unwrap();
        }
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let started = std::time::Instant::now();
        let e = read_file(&path, &mut |_| panic!("no events")).unwrap_err();
        assert!(e.to_string().contains("gzip bomb"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_are_capped_truncation_is_seen_and_junk_is_counted() {
        let good = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete","requestReceivedTimestamp":"2026-01-01T00:00:00Z"}"#;
        let long = "x".repeat(MAX_EVENT_BYTES + 10);
        let text = format!("{good}\nnot json\n{long}\n\n{good}\n{{\"kind\":\"Ev");
        let mut n = 0;
        let mut s = FileSummary::default();
        read_lines(text.as_bytes(), &mut s, &mut |_| n += 1);
        assert_eq!(n, 2);
        assert_eq!((s.events, s.unreadable, s.truncated), (2, 3, true));
    }
}
