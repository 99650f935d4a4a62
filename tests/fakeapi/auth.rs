//! Authentication: bearer tokens (the admin token, issued ServiceAccount tokens with their 10 s success cache) and TokenRequest.

use super::*;

/// Identity for a bearer token through the API server's authentication
/// cache: a success is remembered for `token_cache_ttl`
/// (`pkg/kubeapiserver/authenticator/config.go` wraps the token
/// authenticators in `token/cache` with a 10 s success TTL), so deleting a
/// token's bound object revokes it within that time, not at once. Expiry
/// is checked on every request.
pub(super) fn authenticate_cached(st: &mut State, token: Option<&str>) -> Option<String> {
    let t = token?;
    let fresh = |st: &State| st.tokens.get(t).is_none_or(|i| Instant::now() <= i.expires);
    if let Some((at, id)) = st.token_cache.get(t)
        && at.elapsed() < st.token_cache_ttl
        && fresh(st)
    {
        return Some(id.clone());
    }
    let id = authenticate(st, token)?;
    st.token_cache
        .insert(t.to_string(), (Instant::now(), id.clone()));
    Some(id)
}

/// Identity for a bearer token, if it is valid.
pub(super) fn authenticate(st: &State, token: Option<&str>) -> Option<String> {
    let token = token?;
    if token == ADMIN_TOKEN {
        return Some("admin".into());
    }
    let t = st.tokens.get(token)?;
    if Instant::now() > t.expires || !t.audiences.iter().any(|a| a == API_AUDIENCE) {
        return None;
    }
    if let Some(uid) = &t.anchor_uid {
        let alive = st.objects.iter().any(|((r, ns, _), o)| {
            r == "secrets" && ns == &t.namespace && o["metadata"]["uid"] == uid.as_str()
        });
        if !alive {
            return None;
        }
    }
    Some(format!(
        "system:serviceaccount:{}:{}",
        t.namespace, t.service_account
    ))
}

pub(super) fn token_request(
    st: &Arc<Mutex<State>>,
    ns: &str,
    sa: &str,
    body: Value,
) -> Response<Full<Bytes>> {
    let mut st = st.lock().unwrap();
    if !st
        .objects
        .contains_key(&("serviceaccounts".into(), ns.into(), sa.into()))
    {
        return respond(
            404,
            &status(
                404,
                "NotFound",
                &format!("serviceaccounts \"{sa}\" not found"),
            ),
        );
    }
    let secs = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    if secs < 600 {
        return respond(
            422,
            &status(422, "Invalid", "expirationSeconds must be at least 600"),
        );
    }
    // The bound object must exist, and be the one the caller names
    // (`pkg/registry/core/serviceaccount/storage/token.go`).
    let bound = &body["spec"]["boundObjectRef"];
    let mut secret_claim = Value::Null;
    let anchor_uid = if bound.is_null() {
        None
    } else {
        if bound["kind"] != "Secret" {
            return respond(
                400,
                &status(
                    400,
                    "BadRequest",
                    "the test server binds tokens to Secrets only",
                ),
            );
        }
        let name = bound["name"].as_str().unwrap_or_default();
        let Some(secret) =
            st.objects
                .get(&("secrets".to_string(), ns.to_string(), name.to_string()))
        else {
            return respond(
                404,
                &status(404, "NotFound", &format!("secrets \"{name}\" not found")),
            );
        };
        let uid = secret["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(asked) = bound["uid"].as_str()
            && !asked.is_empty()
            && asked != uid
        {
            return respond(
                409,
                &status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on Secret \"{name}\": the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ),
            );
        }
        secret_claim = json!({"name": name, "uid": uid});
        Some(uid)
    };
    let audiences: Vec<String> = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![API_AUDIENCE.to_string()],
    };
    // A JWT with the claims a real one carries (`pkg/serviceaccount/claims.go`),
    // `jti` the credential id of KEP-4193; the signature is not one.
    let now = chrono::Utc::now().timestamp();
    let scaled = (secs as f64 / st.time_scale) as i64;
    let sa_uid = st.objects[&(
        "serviceaccounts".to_string(),
        ns.to_string(),
        sa.to_string(),
    )]["metadata"]["uid"]
        .clone();
    let claims = json!({
        "aud": audiences, "exp": now + scaled, "iat": now, "nbf": now,
        "iss": API_AUDIENCE, "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": sa_uid}, "secret": secret_claim},
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"RS256","kid":"fake-apiserver"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        b64.encode(uuid::Uuid::new_v4().as_bytes()),
    );
    let lifetime = Duration::from_secs(secs as u64).div_f64(st.time_scale);
    st.tokens.insert(
        token.clone(),
        IssuedToken {
            namespace: ns.into(),
            service_account: sa.into(),
            expires: Instant::now() + lifetime,
            anchor_uid,
            audiences,
        },
    );
    let expiration = chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap();
    let mut out = body;
    out["status"] = json!({"token": token, "expirationTimestamp": expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    respond(201, &out)
}
