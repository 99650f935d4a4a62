//! `pods/exec` over WebSocket: the channel protocol (v4/v5), streaming with backpressure, stdin, the Status on channel 3, and replay mode.

use super::*;

pub(super) async fn exec(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    cut: bool,
) -> Response<Full<Bytes>> {
    let query = query_params(req.uri());
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let container = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let stdin_wanted = query
        .iter()
        .any(|(k, v)| k == "stdin" && (v == "true" || v == "1"));
    let (root, known, probe, node) = {
        let st = st.lock().unwrap();
        let pod_obj = st
            .objects
            .get(&("pods".into(), ns.into(), pod.into()))
            .cloned();
        let node = pod_obj
            .as_ref()
            .and_then(|p| p["spec"]["nodeName"].as_str())
            .unwrap_or("unscheduled")
            .to_string();
        let known = pod_obj.as_ref().is_some_and(|p| {
            p["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == container.as_str())
        });
        let root = st.rootfs.get(&(ns.to_string(), pod.to_string())).cloned();
        // A command for the scanner image's probe (a sidecar) runs the real
        // probe over the pod's shared proc tree.
        let probe = match (&st.probe_bin, &root, &pod_obj) {
            (Some(bin), Some(r), Some(p)) if is_probe_command(&command) => {
                // The container the probe is asked for, by its ID.
                let wanted = command
                    .iter()
                    .skip_while(|a| *a != "--container-id")
                    .nth(1)
                    .cloned()
                    .unwrap_or_default();
                let target = p["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .find(|c| {
                        status_container_id(p, c).is_some_and(|id| id.starts_with(wanted.as_str()))
                    })
                    .unwrap_or_default()
                    .to_string();
                let scanner = p["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["name"] == container.as_str())
                    .cloned()
                    .unwrap_or(Value::Null);
                Some((
                    bin.clone(),
                    proc_tree(&st.dir, p, r, None, Some(&container)),
                    target.is_empty() || probe_may_read(p, &scanner, &target),
                ))
            }
            _ => None,
        };
        (root, known, probe, node)
    };
    if !known {
        return respond(
            400,
            &status(
                400,
                "BadRequest",
                &format!("container {container} is not valid for pod {pod}"),
            ),
        );
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let protocols = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let protocol = if protocols.contains("v5.channel.k8s.io") {
        "v5.channel.k8s.io"
    } else {
        "v4.channel.k8s.io"
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let counted = st.clone();
    let keys = [
        "all".to_string(),
        format!("ns:{ns}"),
        format!("node:{node}"),
    ];
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        // Simultaneous execs, counted while the command runs and streams.
        let _running = InFlight::enter(&counted, &keys);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let frame = |ch: u8, data: &[u8]| {
            let mut v = vec![ch];
            v.extend_from_slice(data);
            Message::Binary(v.into())
        };
        // Replay: the gatherer's answer for this root and command, with
        // this exec's nonce put in.
        let nonce = command
            .iter()
            .find_map(|a| a.split("VIGIL-GATHER v1 ").nth(1))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty());
        let replay_key = match (&root, &probe, &nonce) {
            (Some(r), None, Some(n)) if counted.lock().unwrap().replay.is_some() => Some(format!(
                "{}\0{}",
                r.display(),
                command.join("\0").replace(n.as_str(), "<NONCE>")
            )),
            _ => None,
        };
        let recorded = replay_key.as_ref().and_then(|k| {
            counted
                .lock()
                .unwrap()
                .replay
                .as_ref()
                .and_then(|m| m.get(k).cloned())
        });
        if let (Some((out, err, status)), Some(n)) = (recorded, &nonce) {
            let swap = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .replace("<NONCE>", n)
                    .into_bytes()
            };
            for chunk in swap(&out).chunks(32 * 1024) {
                let _ = ws.send(frame(1, chunk)).await;
            }
            if !err.is_empty() {
                let _ = ws.send(frame(2, &swap(&err))).await;
            }
            let _ = ws
                .send(frame(3, &serde_json::to_vec(&status).unwrap()))
                .await;
            let _ = ws
                .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code:
                        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
            while let Some(Ok(_)) = ws.next().await {}
            return;
        }
        let mut captured = replay_key.as_ref().map(|_| (Vec::new(), Vec::new()));
        let command_to_run = match (root, probe) {
            (_, Some((bin, tree, may_read))) => {
                Some(probe_process(&bin, &command[1..], &tree, may_read))
            }
            (Some(root), None) => {
                let root = std::ffi::CString::new(root.into_os_string().into_encoded_bytes())
                    .expect("fixture roots have no NUL");
                // chroot(2) in the child rather than the chroot(1) binary:
                // one exec fewer per scan on a machine that also runs vigil.
                let mut cmd =
                    tokio::process::Command::new(command.first().map_or("/bin/sh", String::as_str));
                cmd.args(command.iter().skip(1));
                // SAFETY: chroot and chdir are async-signal-safe syscalls
                // and the closure allocates nothing (the path is a CString
                // made before the fork).
                unsafe {
                    cmd.pre_exec(move || {
                        rustix::process::chroot(root.as_c_str())?;
                        rustix::process::chdir(c"/")?;
                        Ok(())
                    });
                }
                Some(cmd)
            }
            (None, None) => None,
        };
        let status_json = match command_to_run {
            None => internal_error("no root filesystem for this pod"),
            Some(cmd) => {
                match stream_command(&mut ws, cmd, stdin_wanted, protocol, cut, captured.as_mut())
                    .await
                {
                    // A stream cut midway: the connection went away under the
                    // WebSocket, with no close frame and no status.
                    StreamEnd::Cut => return,
                    StreamEnd::Exited(status) => {
                        // A command killed by a signal (an OOM kill) exits 128 +
                        // the signal, as the runtimes report it.
                        let code = status.code().or_else(|| {
                            std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)
                        });
                        match code {
                            Some(0) => json!({"metadata": {}, "status": "Success"}),
                            code => {
                                json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: {code:?}"), "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.unwrap_or(-1).to_string()}]}})
                            }
                        }
                    }
                    StreamEnd::NotStarted(e) => {
                        // What containerd reports when the binary is missing, as
                        // the kubelet wraps it: not an exit code but
                        // `apierrors.NewInternalError` (ServeExec in
                        // staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go).
                        let program = command.first().map_or("", String::as_str);
                        let why = if e.kind() == std::io::ErrorKind::NotFound {
                            format!("stat {program}: no such file or directory")
                        } else {
                            e.to_string()
                        };
                        internal_error(&format!(
                            "failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: {why}: unknown"
                        ))
                    }
                }
            }
        };
        if let (Some(key), Some((out, err)), Some(n)) = (replay_key, captured, &nonce) {
            let strip = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .replace(n.as_str(), "<NONCE>")
                    .into_bytes()
            };
            if let Some(m) = counted.lock().unwrap().replay.as_mut() {
                m.insert(key, (strip(&out), strip(&err), status_json.clone()));
            }
        }
        let _ = ws
            .send(frame(3, &serde_json::to_vec(&status_json).unwrap()))
            .await;
        // A normal closure, as the API server's WebSocket stream ends.
        let _ = ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
        while let Some(Ok(_)) = ws.next().await {}
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .header("sec-websocket-protocol", protocol)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The status the kubelet writes when the runtime cannot run an exec:
/// `apierrors.NewInternalError(fmt.Errorf("error executing command in
/// container: %v", err))` (kubernetes/kubernetes
/// `staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go`,
/// `staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go`).
/// How a streamed command ended.
pub(super) enum StreamEnd {
    /// It ran and exited.
    Exited(std::process::ExitStatus),
    /// It could not be started.
    NotStarted(std::io::Error),
    /// The stream was cut (an injected fault): nothing more is sent.
    Cut,
}

/// Run `cmd` and stream it over the exec WebSocket as the kubelet does:
/// stdout on channel 1 and stderr on channel 2 as they are produced (a
/// send waits for the client: backpressure), and, with `stdin`, channel 0
/// from the client into the command; under `v5.channel.k8s.io` a
/// `[255, 0]` message closes stdin (KEP-4006). With `cut`, the connection
/// goes away after half of the first stdout chunk.
pub(super) async fn stream_command<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    mut cmd: tokio::process::Command,
    stdin: bool,
    protocol: &str,
    cut: bool,
    mut capture: Option<&mut (Vec<u8>, Vec<u8>)>,
) -> StreamEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    cmd.stdin(if stdin {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return StreamEnd::NotStarted(e),
    };
    let frame = |ch: u8, data: &[u8]| {
        let mut v = vec![ch];
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    let mut input = child.stdin.take();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (mut out_done, mut err_done, mut client_done) = (false, false, false);
    let (mut obuf, mut ebuf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    while !(out_done && err_done) {
        tokio::select! {
            n = out.read(&mut obuf), if !out_done => match n {
                Ok(0) | Err(_) => out_done = true,
                Ok(n) if cut => {
                    let _ = ws.send(frame(1, &obuf[..n / 2])).await;
                    let _ = child.kill().await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(ws.get_mut()).await;
                    return StreamEnd::Cut;
                }
                Ok(n) => {
                    if let Some(c) = capture.as_mut() {
                        c.0.extend_from_slice(&obuf[..n]);
                    }
                    let _ = ws.send(frame(1, &obuf[..n])).await;
                }
            },
            n = err.read(&mut ebuf), if !err_done => match n {
                Ok(0) | Err(_) => err_done = true,
                Ok(n) => {
                    if let Some(c) = capture.as_mut() {
                        c.1.extend_from_slice(&ebuf[..n]);
                    }
                    let _ = ws.send(frame(2, &ebuf[..n])).await;
                }
            },
            msg = ws.next(), if !client_done => match msg {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(0) => {
                        if let Some(i) = input.as_mut() && i.write_all(&data[1..]).await.is_err() {
                            input = None;
                        }
                    }
                    Some(255) if protocol == "v5.channel.k8s.io" && data.get(1) == Some(&0) => {
                        input = None;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_done = true;
                    input = None;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(input);
    match child.wait().await {
        Ok(status) => StreamEnd::Exited(status),
        Err(e) => StreamEnd::NotStarted(e),
    }
}

pub(super) fn internal_error(runtime_error: &str) -> Value {
    let err = format!("error executing command in container: {runtime_error}");
    json!({
        "metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
        "message": format!("Internal error occurred: {err}"),
        "details": {"causes": [{"message": err}]}
    })
}
