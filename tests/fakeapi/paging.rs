//! Lists in pages, as the API server serves `limit` and `continue`
//! (KEP 365, "API chunking"): at most `limit` items, in key order, and a
//! continue token naming the key after the last one and the resource
//! version the listing started at
//! (staging/src/k8s.io/apiserver/pkg/storage/continue.go); `remainingItemCount`
//! only when no selector filtered the list. A malformed token is a 400, a
//! resource version beside a continue token is a 400, and a token whose
//! version was compacted away is a 410 Expired (etcd3 store's
//! `interpretListError`), which clients answer by listing again.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{State, status};

/// A continue token's content (`continueToken` in continue.go).
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

/// The page of `items` (key, object; in key order) that `query` asks for,
/// as JSON, or the API server's refusal (code, Status).
pub(super) fn page(
    st: &mut State,
    resource: &str,
    items: Vec<(String, Value)>,
    query: &[(String, String)],
    filtered: bool,
) -> Result<Vec<u8>, (u16, Value)> {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let bad = |message: String| (400, status(400, "BadRequest", &message));
    let limit = match get("limit") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| bad(format!("invalid limit {v:?}")))?,
    };
    let rv = st.version.max(1) as i64;
    let mut from = None;
    if let Some(token) = get("continue").filter(|t| !t.is_empty()) {
        if get("resourceVersion").is_some_and(|v| !v.is_empty() && v != "0") {
            return Err(bad(
                "specifying resource version is not allowed when using continue".into(),
            ));
        }
        let (start_rv, start) =
            decode(token).map_err(|why| bad(format!("invalid continue token: {why}")))?;
        let _ = start_rv;
        if super::routes::take_fault(&mut st.faults.list_continue_gone) {
            return Err((
                410,
                status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
            ));
        }
        from = Some(start);
    }
    let mut items: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(key, _)| from.as_deref().is_none_or(|f| key.as_str() >= f))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if limit > 0 && items.len() > limit as usize {
        let rest = items.split_off(limit as usize);
        let last = &items.last().expect("limit > 0").0;
        let next = match get("continue").filter(|c| st.faults.list_same_continue && !c.is_empty()) {
            Some(asked) => asked.to_string(),
            None => encode(rv, &format!("{last}\u{0}")),
        };
        meta["continue"] = json!(next);
        if !filtered {
            meta["remainingItemCount"] = json!(rest.len());
        }
    }
    let mut list = super::list(resource, items.into_iter().map(|(_, o)| o).collect());
    list["metadata"] = meta;
    let body = serde_json::to_vec(&list).unwrap();
    Ok(match st.faults.list_padding {
        0 => body,
        bytes => super::routes::pad(body, bytes),
    })
}

fn encode(rv: i64, start: &str) -> String {
    let token = Token {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap())
}

/// `DecodeContinue`'s checks: base64url JSON of version meta.k8s.io/v1, a
/// resource version, a start key that stays inside the listed prefix.
fn decode(token: &str) -> Result<(i64, String), String> {
    let invalid = "continue key is not valid";
    let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| format!("{invalid}: {e}"))?;
    let t: Token = serde_json::from_slice(&data).map_err(|e| format!("{invalid}: {e}"))?;
    if t.v != "meta.k8s.io/v1" {
        return Err(format!(
            "{invalid}: server does not recognize this encoded version {}",
            t.v
        ));
    }
    if t.rv == 0 {
        return Err(format!(
            "{invalid}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ));
    }
    if t.start.is_empty() {
        return Err(format!(
            "{invalid}: encoded start key empty (version meta.k8s.io/v1)"
        ));
    }
    // path.Clean("/" + start) must leave it as it is: no empty, "." or
    // ".." segment (a start key cannot climb out of the listed prefix).
    let key = t.start.strip_prefix('/').unwrap_or(&t.start);
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!("{invalid}: {}", t.start));
    }
    Ok((t.rv, t.start))
}
