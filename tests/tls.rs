//! Certificates rustls refuses where kubectl (Go's TLS) accepts them: each
//! refusal is an error that names the certificate at fault and the fix
//! (kube-rs#1562, kube-rs#1767, rustls/rustls#2364), never a bare
//! `client error (Connect)`.
//!
//! The certificates are made by `openssl`, independently of vigil; the
//! server is rustls with a resolver that serves any chain as given (an
//! X.509 v1 leaf included, which `with_single_cert` would refuse to load).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::util::{TempDir, repo};

const OPENSSL_CNF: &str = "[req]\ndistinguished_name = dn\n[dn]\n\
[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
[leaf]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth,clientAuth\n\
[selfca]\nbasicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1\n";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key `name.key` and `openssl req` with `mode` (`-new` for a CSR
/// `name.csr`, or `-x509 -extensions EXT` for a self-signed `name.pem`).
fn req(dir: &Path, name: &str, cn: &str, mode: &[&str], out: &str) {
    let (key, out, subj) = (
        format!("{name}.key"),
        format!("{name}.{out}"),
        format!("/CN={cn}"),
    );
    let mut args = vec!["req", "-config", "c.cnf"];
    args.extend_from_slice(mode);
    args.extend([
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &out,
        "-subj",
        &subj,
        "-days",
        "2",
    ]);
    openssl(dir, &args);
}

/// A P-256 key and a CSR for `cn`.
fn csr(dir: &Path, name: &str, cn: &str) {
    req(dir, name, cn, &["-new"], "csr");
}

/// A self-signed certificate with the `ext` section of [`OPENSSL_CNF`].
fn self_signed(dir: &Path, name: &str, ext: &str) {
    req(dir, name, name, &["-x509", "-extensions", ext], "pem");
}

/// `name.csr` signed by `ca`; with `ext` None, no extensions at all: an
/// X.509 v1 certificate (OpenSSL 3.0 writes v1 when there is none).
fn issue(dir: &Path, name: &str, ca: &str, ext: Option<&str>, serial: &str) {
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-set_serial",
        serial,
        "-days",
        "2",
        "-out",
        &format!("{name}.pem"),
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    if let Some(ext) = ext {
        args.extend(["-extfile", "c.cnf", "-extensions", ext].map(str::to_string));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(dir, &args);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &format!("{name}.pem")])
        .current_dir(dir)
        .output()
        .unwrap();
    let want = if ext.is_some() {
        "Version: 3"
    } else {
        "Version: 1"
    };
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(want),
        "openssl wrote {name}.pem with another X.509 version than {want}"
    );
}

/// Serves `chain` (leaf first) with `key` on 127.0.0.1, completes or fails
/// the handshake, then closes. Returns the port.
fn serve(dir: &Path, chain: &[&str], key: &str) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|n| CertificateDer::from_pem_file(dir.join(format!("{n}.pem"))).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{key}.key"))).unwrap();
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    let resolver = Fixed(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
    });
    port
}

fn b64_file(dir: &Path, name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(name)).unwrap())
}

/// `vigil plan` against `https://127.0.0.1:port` trusting `ca` (and
/// presenting `client` as its certificate, if any): its stderr.
fn plan_against(dir: &Path, port: u16, ca: &str, client: Option<&str>) -> (i32, String) {
    let user = match client {
        Some(c) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64_file(dir, &format!("{c}.pem")),
            b64_file(dir, &format!("{c}.key"))
        ),
        None => "    token: not-a-real-token\n".to_string(),
    };
    let kubeconfig = dir.join(format!("kubeconfig-{port}-{ca}"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            b64_file(dir, &format!("{ca}.pem"))
        ),
    )
    .unwrap();
    let policy: PathBuf = dir.join("p.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("plan")
        .arg(&policy)
        .arg(repo().join("policies/profiles"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn certificates_rustls_refuses_are_errors_that_name_the_certificate_and_the_fix() {
    let dir = TempDir::new("tls");
    let d = dir.path();
    dir.write("c.cnf", OPENSSL_CNF);
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: tls}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, approach: api}\n",
    );
    self_signed(d, "ca", "ca");
    self_signed(d, "other-ca", "ca");
    self_signed(d, "selfca", "selfca");
    csr(d, "leaf", "apiserver");
    issue(d, "leaf", "ca", Some("leaf"), "2");
    csr(d, "v1leaf", "apiserver");
    issue(d, "v1leaf", "ca", None, "3");
    csr(d, "v1client", "system:admin");
    issue(d, "v1client", "ca", None, "4");

    let good = serve(d, &["leaf", "ca"], "leaf");
    let cases: [(&str, u16, &str, Option<&str>, &str); 5] = [
        (
            "an X.509 v1 serving certificate",
            serve(d, &["v1leaf", "ca"], "v1leaf"),
            "ca",
            None,
            "presents an X.509 v1 certificate",
        ),
        (
            "the server's own leaf as certificate-authority-data",
            good,
            "leaf",
            None,
            "holds a certificate that is not a CA",
        ),
        (
            "a self-signed CA certificate served as the server's own",
            serve(d, &["selfca"], "selfca"),
            "selfca",
            None,
            "presents a CA certificate",
        ),
        (
            "another cluster's CA",
            good,
            "other-ca",
            None,
            "not issued by the kubeconfig's certificate-authority-data",
        ),
        (
            "an X.509 v1 client certificate (as microk8s writes)",
            good,
            "ca",
            Some("v1client"),
            "client certificate (client-certificate-data) is X.509 v1",
        ),
    ];
    for (what, port, ca, client, want) in cases {
        let (code, err) = plan_against(d, port, ca, client);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(err.contains(want), "{what}: expected «{want}» in: {err}");
        assert!(!err.contains("not-a-real-token"), "{err}");
        eprintln!(
            "{what}: {}",
            err.lines().find(|l| l.contains(want)).unwrap_or("")
        );
    }
    // The control: the right CA, a v3 leaf. The handshake succeeds (this
    // server then closes), so no certificate is blamed.
    let (code, err) = plan_against(d, good, "ca", None);
    assert_eq!(code, 2, "{err}");
    assert!(
        !err.contains("X.509") && !err.contains("not a CA") && !err.contains("not issued by"),
        "{err}"
    );
}
