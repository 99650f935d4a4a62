//! Ephemeral containers: admission (Pod Security restricted), image pulls, the Waiting → Running → Terminated lifecycle, watches with bookmarks and 410, logs, and the proc tree a probe sees.

use super::*;

/// Answer a watch of one pod: wait until the pod has a resourceVersion
/// above `since` (or the timeout ends the watch, as a real server may), then
/// send its current state as one event. The latest state, not every
/// intermediate one: what a client waiting for a condition needs.
pub(super) async fn watch_pod(
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    since: u64,
    timeout: Duration,
    bookmarks: bool,
) -> Response<Full<Bytes>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = st
        .lock()
        .unwrap()
        .changes
        .as_ref()
        .expect("the server tracks changes")
        .subscribe();
    loop {
        let current = st
            .lock()
            .unwrap()
            .objects
            .get(&("pods".into(), ns.into(), pod.into()))
            .cloned();
        let Some(current) = current else {
            let event = json!({"type": "DELETED", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns}}});
            return watch_body(&[event]);
        };
        let version: u64 = current["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version > since {
            return watch_body(&[json!({"type": "MODIFIED", "object": current})]);
        }
        // Nothing new for this pod, but the store moved on: a client that
        // allows them gets a BOOKMARK with the current version (the watch
        // cache sends them periodically, `cacher.go`), and resumes from it.
        let global = st.lock().unwrap().version;
        if bookmarks && global > since {
            return watch_body(&[
                json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": global.to_string()}}}),
            ]);
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return watch_body(&[]);
        }
    }
}

pub(super) fn watch_body(events: &[Value]) -> Response<Full<Bytes>> {
    let mut body = Vec::new();
    for e in events {
        body.extend_from_slice(&serde_json::to_vec(e).unwrap());
        body.push(b'\n');
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

pub(super) fn container_status(name: &str, state: Value) -> Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": state})
}

/// `PATCH pods/{pod}/ephemeralcontainers` (strategic merge: the listed
/// containers are appended). Validates as the API server does, then runs
/// the container in the background.
pub(super) fn add_ephemeral(
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    body: Value,
) -> Response<Full<Bytes>> {
    let mut guard = st.lock().unwrap();
    let key = ("pods".to_string(), ns.to_string(), pod.to_string());
    let Some(current) = guard.objects.get(&key).cloned() else {
        return respond(
            404,
            &status(404, "NotFound", &format!("pods \"{pod}\" not found")),
        );
    };
    let existing: Vec<String> = current["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let app: Vec<String> = current["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let added: Vec<Value> = body["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let invalid = |msg: String| respond(422, &status(422, "Invalid", &msg));
    for (i, c) in added.iter().enumerate() {
        let field = format!("spec.ephemeralContainers[{i}]");
        let Some(name) = c["name"].as_str() else {
            return invalid(format!("{field}.name: Required value"));
        };
        if existing.iter().any(|e| e == name) {
            return invalid(format!(
                "{field}: Forbidden: existing ephemeral containers \"{name}\" may not be changed"
            ));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            return invalid(format!("{field}.image: Required value"));
        }
        if c["resources"].as_object().is_some_and(|r| !r.is_empty()) {
            return invalid(format!(
                "{field}.resources: Forbidden: cannot be set for an Ephemeral Container"
            ));
        }
        if let Some(t) = c["targetContainerName"].as_str()
            && !app.iter().any(|a| a == t)
        {
            return invalid(format!("{field}.targetContainerName: Not found: \"{t}\""));
        }
    }
    // Pod Security Admission on the ephemeralcontainers subresource, when
    // the namespace enforces a level: the whole updated pod is judged, its
    // own containers too, not only the one added (`admission.go` evaluates
    // the pod of an ephemeralcontainers update; `EvaluatePod`). Restricted
    // includes every baseline rule.
    let level = guard.enforced_level(ns);
    if let Some(level) = level {
        let existing: Vec<Value> = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|k| current["spec"][*k].as_array().cloned().unwrap_or_default())
            .collect();
        let all: Vec<&Value> = existing.iter().chain(added.iter()).collect();
        let mut why: Vec<String> = baseline_violations(&current, &all);
        if level == "restricted" {
            why.extend(pod_level_violations(&current));
            for c in &all {
                why.extend(restricted_violations(&current, c));
            }
        }
        if !why.is_empty() {
            return respond(
                403,
                &status(
                    403,
                    "Forbidden",
                    &format!(
                        "pods \"{pod}\" is forbidden: violates PodSecurity \"{level}:latest\": {}",
                        why.join(", ")
                    ),
                ),
            );
        }
    }
    {
        let pod_obj = guard.objects.get_mut(&key).unwrap();
        let spec = &mut pod_obj["spec"];
        if !spec["ephemeralContainers"].is_array() {
            spec["ephemeralContainers"] = json!([]);
        }
        let list = spec["ephemeralContainers"].as_array_mut().unwrap();
        list.extend(added.iter().cloned());
        let status_obj = &mut pod_obj["status"];
        if !status_obj["ephemeralContainerStatuses"].is_array() {
            status_obj["ephemeralContainerStatuses"] = json!([]);
        }
        for c in &added {
            status_obj["ephemeralContainerStatuses"]
                .as_array_mut()
                .unwrap()
                .push(container_status(
                    c["name"].as_str().unwrap(),
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                ));
        }
    }
    guard.touch(ns, pod);
    let updated = guard.objects.get(&key).cloned().unwrap();
    let padding = std::mem::take(&mut guard.faults.patch_padding);
    drop(guard);
    for c in added {
        tokio::spawn(run_ephemeral(
            st.clone(),
            ns.to_string(),
            pod.to_string(),
            c,
        ));
    }
    if padding > 0 {
        return super::routes::padded_json(&updated, padding);
    }
    respond(200, &updated)
}

/// What the baseline level refuses in a pod, written here from the Pod
/// Security Standards (kubernetes/website pod-security-standards.md) and
/// `staging/src/k8s.io/pod-security-admission/policy/check_*.go` at
/// `latest`, independently of vigil's own evaluator: host namespaces,
/// privileged, capabilities beyond the default set, hostPath volumes, host
/// ports, AppArmor, SELinux, /proc mount (relaxed for user-namespace pods),
/// seccomp `Unconfined`, sysctls outside the safe list, HostProcess, probe
/// and lifecycle hosts.
pub(super) fn baseline_violations(pod: &Value, containers: &[&Value]) -> Vec<String> {
    const CAPS: [&str; 13] = [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    const SYSCTLS: [&str; 14] = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    ];
    let spec = &pod["spec"];
    let psc = &spec["securityContext"];
    let mut why = Vec::new();
    for k in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[k] == true {
            why.push(format!("host namespaces ({k}=true)"));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if v.get("hostPath").is_some() {
            why.push(format!("hostPath volumes (volume {})", v["name"]));
        }
    }
    for s in psc["sysctls"].as_array().into_iter().flatten() {
        if !SYSCTLS.contains(&s["name"].as_str().unwrap_or_default()) {
            why.push(format!("forbidden sysctls ({})", s["name"]));
        }
    }
    for (k, v) in pod["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let v = v.as_str().unwrap_or_default();
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        {
            why.push(format!("forbidden AppArmor profile ({k}={v})"));
        }
    }
    let user_ns = spec["hostUsers"] == false;
    fn context(why: &mut Vec<String>, who: String, sc: &Value) {
        const SELINUX: [&str; 5] = [
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ];
        let se = &sc["seLinuxOptions"];
        if se.is_object()
            && (!SELINUX.contains(&se["type"].as_str().unwrap_or_default())
                || se["user"].as_str().is_some_and(|u| !u.is_empty())
                || se["role"].as_str().is_some_and(|r| !r.is_empty()))
        {
            why.push(format!("seLinuxOptions ({who})"));
        }
        if sc["seccompProfile"]["type"]
            .as_str()
            .is_some_and(|t| t != "RuntimeDefault" && t != "Localhost")
        {
            why.push(format!("seccompProfile ({who})"));
        }
        if sc["appArmorProfile"]["type"]
            .as_str()
            .is_some_and(|t| t != "RuntimeDefault" && t != "Localhost")
        {
            why.push(format!("forbidden AppArmor profile ({who})"));
        }
        if sc["windowsOptions"]["hostProcess"] == true {
            why.push(format!("hostProcess ({who})"));
        }
    }
    context(&mut why, "pod".into(), psc);
    for c in containers {
        let name = c["name"].as_str().unwrap_or_default();
        let sc = &c["securityContext"];
        context(&mut why, format!("container \"{name}\""), sc);
        if sc["privileged"] == true {
            why.push(format!("privileged (container \"{name}\")"));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if !CAPS.contains(&cap.as_str().unwrap_or_default()) {
                why.push(format!(
                    "non-default capabilities (container \"{name}\" adds {cap})"
                ));
            }
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
                why.push(format!("hostPort (container \"{name}\")"));
            }
        }
        if !user_ns && sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            why.push(format!("procMount (container \"{name}\")"));
        }
        let probes = ["livenessProbe", "readinessProbe", "startupProbe"].map(|p| &c[p]);
        let hooks = ["postStart", "preStop"].map(|h| &c["lifecycle"][h]);
        for h in probes.iter().chain(hooks.iter()) {
            for kind in ["httpGet", "tcpSocket"] {
                if h[kind]["host"].as_str().is_some_and(|s| !s.is_empty()) {
                    why.push(format!("probe or lifecycle host (container \"{name}\")"));
                }
            }
        }
    }
    why
}

/// What `restricted` (with the `baseline` it includes) refuses at the pod
/// level: host namespaces (`check_hostNamespaces.go`) and volume types
/// other than the allowed ones (`check_restrictedVolumes.go`, which allows
/// `image` volumes since the v1.33 code, at every policy version).
pub(super) fn pod_level_violations(pod: &Value) -> Vec<String> {
    let spec = &pod["spec"];
    let mut why = Vec::new();
    let hosts: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec[*k] == true)
        .collect();
    if !hosts.is_empty() {
        why.push(format!("host namespaces ({}=true)", hosts.join(", ")));
    }
    const ALLOWED: [&str; 9] = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let restricted: Vec<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            !v.as_object()
                .is_some_and(|o| o.keys().any(|k| ALLOWED.contains(&k.as_str())))
        })
        .filter_map(|v| v["name"].as_str())
        .collect();
    if !restricted.is_empty() {
        why.push(format!("restricted volume types (volumes {restricted:?})"));
    }
    why
}

/// What the Pod Security Standards' `restricted` level refuses in a
/// container of `pod` (`staging/src/k8s.io/pod-security-admission/policy/`:
/// `check_allowPrivilegeEscalation.go`, `check_capabilities_restricted.go`,
/// `check_runAsNonRoot.go`, `check_runAsUser.go`, `check_seccompProfile_restricted.go`).
pub(super) fn restricted_violations(pod: &Value, c: &Value) -> Vec<String> {
    let sc = &c["securityContext"];
    let psc = &pod["spec"]["securityContext"];
    let name = c["name"].as_str().unwrap_or_default();
    let mut why = Vec::new();
    if sc["allowPrivilegeEscalation"] != false {
        why.push(format!("allowPrivilegeEscalation != false (container \"{name}\" must set securityContext.allowPrivilegeEscalation=false)"));
    }
    let drops = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == "ALL"));
    let adds_ok = sc["capabilities"]["add"]
        .as_array()
        .is_none_or(|a| a.iter().all(|x| x == "NET_BIND_SERVICE"));
    if !drops || !adds_ok {
        why.push(format!("unrestricted capabilities (container \"{name}\" must set securityContext.capabilities.drop=[\"ALL\"] and add only NET_BIND_SERVICE)"));
    }
    let non_root = sc["runAsNonRoot"]
        .as_bool()
        .or(psc["runAsNonRoot"].as_bool())
        == Some(true);
    if !non_root {
        why.push(format!(
            "runAsNonRoot != true (container \"{name}\" must set securityContext.runAsNonRoot=true)"
        ));
    }
    if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && psc["runAsUser"] == 0) {
        why.push(format!(
            "runAsUser=0 (container \"{name}\" must not set runAsUser=0)"
        ));
    }
    let seccomp = sc["seccompProfile"]["type"]
        .as_str()
        .or(psc["seccompProfile"]["type"].as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        why.push(format!("seccompProfile (container \"{name}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"));
    }
    why
}

pub(super) fn set_ephemeral_state(
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    name: &str,
    state: Value,
) {
    let mut guard = st.lock().unwrap();
    let key = ("pods".to_string(), ns.to_string(), pod.to_string());
    if let Some(p) = guard.objects.get_mut(&key)
        && let Some(list) = p["status"]["ephemeralContainerStatuses"].as_array_mut()
        && let Some(s) = list.iter_mut().find(|s| s["name"] == name)
    {
        s["state"] = state;
    }
    guard.touch(ns, pod);
}

/// Run an ephemeral container: the scanner image runs the real probe with
/// `--proc` at a proc tree for the pod — the target container's PID
/// namespace, where its entrypoint is PID 1, or, in a pod with
/// `shareProcessNamespace: true`, the pod's, where PID 1 is `pause`. The
/// kernel's ptrace access check decides whether the probe may open the
/// target's root: when it may not, the root is a directory the probe (then
/// run as nobody) cannot open, so it fails with EACCES as on a node.
pub(super) async fn run_ephemeral(st: Arc<Mutex<State>>, ns: String, pod: String, c: Value) {
    let name = c["name"].as_str().unwrap_or_default().to_string();
    let command: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let (probe, tree, allowed) = {
        let guard = st.lock().unwrap();
        let pod_obj = guard
            .objects
            .get(&("pods".into(), ns.clone(), pod.clone()))
            .cloned()
            .unwrap_or(Value::Null);
        let root = guard.rootfs.get(&(ns.clone(), pod.clone())).cloned();
        let target = c["targetContainerName"].as_str().unwrap_or_default();
        let shared = pod_obj["spec"]["shareProcessNamespace"] == true;
        let tree = root.map(|r| {
            let target = (!shared).then_some(target);
            proc_tree(&guard.dir, &pod_obj, &r, target, None)
        });
        let allowed = probe_may_read(&pod_obj, &c, target);
        (guard.probe_bin.clone(), tree, allowed)
    };
    let image = c["image"].as_str().unwrap_or_default().to_string();
    if st
        .lock()
        .unwrap()
        .unpullable
        .iter()
        .any(|p| image.starts_with(p.as_str()))
    {
        set_ephemeral_state(
            &st,
            &ns,
            &pod,
            &name,
            json!({"waiting": {"reason": "ErrImagePull", "message": format!("failed to pull and unpack image \"{image}\": failed to resolve reference: pull access denied, repository does not exist or may require authorization")}}),
        );
        return;
    }
    let (Some(probe), Some(tree), true) = (probe, tree, is_probe_command(&command)) else {
        set_ephemeral_state(
            &st,
            &ns,
            &pod,
            &name,
            json!({"waiting": {"reason": "ErrImagePull", "message": "the test server runs only the vigil scanner image's probe"}}),
        );
        return;
    };
    set_ephemeral_state(
        &st,
        &ns,
        &pod,
        &name,
        json!({"running": {"startedAt": "2026-11-26T00:00:00Z"}}),
    );
    let mut cmd = probe_process(&probe, &command[1..], &tree, allowed);
    let out = cmd.output().await;
    let noise = std::mem::take(&mut st.lock().unwrap().faults.log_noise);
    let (log, code) = match out {
        Ok(o) => {
            let mut log = b"noise \n".repeat(noise / 7);
            log.extend_from_slice(&o.stdout);
            log.extend_from_slice(&o.stderr);
            (log, o.status.code().unwrap_or(128))
        }
        Err(e) => (e.to_string().into_bytes(), 128),
    };
    st.lock()
        .unwrap()
        .logs
        .insert((ns.clone(), pod.clone(), name.clone()), log);
    set_ephemeral_state(
        &st,
        &ns,
        &pod,
        &name,
        json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}),
    );
}

/// The scanner image's entrypoint, as `approach::PROBE_BINARY` names it.
pub(super) fn is_probe_command(command: &[String]) -> bool {
    command.first().is_some_and(|c| c == "/usr/local/bin/vigil")
        && command.get(1).is_some_and(|c| c == "probe")
}

/// A 64-hex container ID from a container status, without the runtime prefix.
pub(super) fn status_container_id(pod: &Value, container: &str) -> Option<String> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == container)?["containerID"]
        .as_str()
        .map(|id| id.split_once("://").map_or(id, |(_, b)| b).to_string())
}

/// Build a proc tree for a pod, as the probe would see it:
/// - `target: Some(c)`: the PID namespace of container `c` (an ephemeral
///   container targeting it): PID 1 is `c`'s entrypoint;
/// - `target: None`: the pod's shared PID namespace: PID 1 is the pause
///   container, then one process per container, each in a cgroup named
///   after its container ID; `own` is the container the probe runs in
///   (its root is not the fixture's).
pub(super) fn proc_tree(
    dir: &Path,
    pod: &Value,
    root: &Path,
    target: Option<&str>,
    own: Option<&str>,
) -> PathBuf {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("0000");
    // One tree per container start or exec: concurrent scans of a pod never
    // share one.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tree = dir.join("proc").join(ns).join(name).join(format!(
        "{}-{}",
        target.map_or_else(|| "shared".to_string(), |t| format!("target-{t}")),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let empty = dir.join("proc").join("empty-root");
    std::fs::create_dir_all(&empty).unwrap();
    let add = |pid: u32, root: &Path, cgroup: String, proc_name: &str, user: i64, cmdline: &str| {
        let p = tree.join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(root, p.join("root")).unwrap();
        std::fs::write(p.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        std::fs::write(
            p.join("status"),
            format!("Name:\t{proc_name}\nState:\tS (sleeping)\nPid:\t{pid}\nUid:\t{user}\t{user}\t{user}\t{user}\n"),
        )
        .unwrap();
        std::fs::write(p.join("cmdline"), cmdline.replace(' ', "\0") + "\0").unwrap();
    };
    let slice = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        uid.replace('-', "_")
    );
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let user_of = |c: &Value| {
        c["securityContext"]["runAsUser"]
            .as_i64()
            .or(pod["spec"]["securityContext"]["runAsUser"].as_i64())
            .unwrap_or(0)
    };
    let command_of = |c: &Value| {
        c["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| c["name"].as_str().unwrap_or("app").to_string())
    };
    match target {
        Some(t) => {
            let c = containers
                .iter()
                .find(|c| c["name"] == t)
                .cloned()
                .unwrap_or(Value::Null);
            let id = status_container_id(pod, t).unwrap_or_else(|| "0".repeat(64));
            add(
                1,
                root,
                format!("{slice}/cri-containerd-{id}.scope"),
                t,
                user_of(&c),
                &command_of(&c),
            );
        }
        None => {
            add(
                1,
                &empty,
                format!("{slice}/cri-containerd-{}.scope", "f".repeat(64)),
                "pause",
                65535,
                "/pause",
            );
            for (i, c) in containers.iter().enumerate() {
                let cname = c["name"].as_str().unwrap_or_default();
                let Some(id) = status_container_id(pod, cname) else {
                    continue;
                };
                let croot = if Some(cname) == own { &empty } else { root };
                add(
                    10 + i as u32,
                    croot,
                    format!("{slice}/cri-containerd-{id}.scope"),
                    cname,
                    user_of(c),
                    &command_of(c),
                );
            }
        }
    }
    tree
}
