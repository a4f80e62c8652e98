//! CA and serving-certificate generation: `certs generate` for a cluster Service and the
//! localhost set `serve --dev` creates (or reuses).
//!
//! Keys are ECDSA P-256: the API server (Go crypto/tls) and every client we care about accept it,
//! and generation is instant. The serving certificate is signed by a dedicated CA whose PEM is
//! what the webhook configuration's `caBundle` carries, so the serving pair can be rotated
//! without touching the webhook configuration as long as the CA stays.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::cli::CertsGenerateArgs;

/// CA certificate (PEM): what clients trust; base64 of it is the webhook's `caBundle`.
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA private key (PEM): only needed to sign a new serving certificate with the same CA.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// Serving certificate (PEM), the name a `kubernetes.io/tls` Secret uses.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// Serving private key (PEM), the name a `kubernetes.io/tls` Secret uses.
pub const TLS_KEY_FILE: &str = "tls.key";

/// Names `serve --dev` certifies: what `curl https://localhost:8443` and local tools dial.
pub const DEV_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Validity of the `--dev` serving certificate.
const DEV_DAYS: u32 = 30;
/// A `--dev` certificate expiring sooner than this is regenerated rather than reused, so a
/// session started today does not break halfway through.
const DEV_MIN_REMAINING: Duration = Duration::from_secs(24 * 60 * 60);
/// Backdating of `notBefore`, so a client whose clock runs a little behind accepts a
/// certificate generated a moment ago.
const CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);
const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// A CA and a serving certificate signed by it, all PEM.
pub struct Issued {
    /// CA certificate.
    pub ca_cert_pem: String,
    /// CA private key.
    pub ca_key_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving private key.
    pub key_pem: String,
}

/// The SANs the API server dials for a webhook Service: it connects to
/// `https://NAME.NS.svc:PORT` (the other forms cover in-cluster clients and tools).
pub fn service_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Issues a fresh CA (valid `ca_days`) and a serving certificate for `sans` (valid `days`).
pub fn issue(
    common_name: &str,
    sans: &[String],
    days: u32,
    ca_days: u32,
) -> Result<Issued, rcgen::Error> {
    // `now` in the date type rcgen's validity fields use, built from rcgen's own constructor so
    // no direct dependency on the `time` crate is needed.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("rollout-guard CA for {common_name}"),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - CLOCK_SKEW;
    ca_params.not_after = now + days_duration(ca_days);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name.to_owned());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + days_duration(days);
    let issuer = Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;

    Ok(Issued {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Runs `certs generate`: writes the four PEM files and prints the `caBundle`.
pub fn generate(args: &CertsGenerateArgs) -> anyhow::Result<()> {
    if args.days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let ca_days = args
        .days
        .checked_mul(10)
        .context("--days is too large (the CA is valid ten times as long)")?;
    let sans = service_sans(&args.service, &args.namespace);
    let common_name = format!("{}.{}.svc", args.service, args.namespace);
    let issued = issue(&common_name, &sans, args.days, ca_days)
        .with_context(|| format!("cannot issue certificates for {}", sans.join(", ")))?;

    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    write_pem(&args.out.join(CA_CERT_FILE), &issued.ca_cert_pem, false)?;
    write_pem(&args.out.join(CA_KEY_FILE), &issued.ca_key_pem, true)?;
    write_pem(&args.out.join(TLS_CERT_FILE), &issued.cert_pem, false)?;
    write_pem(&args.out.join(TLS_KEY_FILE), &issued.key_pem, true)?;

    let out = args.out.display();
    println!("wrote {out}/{CA_CERT_FILE}      CA certificate, valid {ca_days} days");
    println!("      {out}/{CA_KEY_FILE}   CA private key (0600; keep it offline, only needed to re-sign)");
    println!(
        "      {out}/{TLS_CERT_FILE}     serving certificate for {}, valid {} days",
        sans.join(", "),
        args.days
    );
    println!("      {out}/{TLS_KEY_FILE}     serving private key (0600)");
    println!();
    println!("create the Secret the server mounts:");
    println!(
        "  kubectl -n {} create secret tls {}-tls --cert={out}/{TLS_CERT_FILE} --key={out}/{TLS_KEY_FILE}",
        args.namespace, args.service
    );
    println!("caBundle for the webhook configurations (clientConfig.caBundle):");
    println!("caBundle: {}", ca_bundle(&issued.ca_cert_pem));
    Ok(())
}

/// Base64 of the CA PEM: the form `clientConfig.caBundle` takes.
pub fn ca_bundle(ca_cert_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_cert_pem.as_bytes())
}

/// The certificate files `serve --dev` uses.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// CA certificate to hand to clients (`curl --cacert`).
    pub ca_cert: PathBuf,
    /// Serving certificate.
    pub cert: PathBuf,
    /// Serving key.
    pub key: PathBuf,
    /// Whether existing files were reused (false: freshly generated).
    pub reused: bool,
}

/// Reuses the localhost CA and serving pair in `dir` when they still serve for at least a day,
/// otherwise generates a new set. The dev CA key is not kept: when the set expires a new CA is
/// made, and clients pick up the new `ca.pem`.
pub fn ensure_dev_certs(dir: &Path) -> anyhow::Result<DevCerts> {
    let certs = DevCerts {
        ca_cert: dir.join(CA_CERT_FILE),
        cert: dir.join(TLS_CERT_FILE),
        key: dir.join(TLS_KEY_FILE),
        reused: false,
    };
    match dev_certs_usable(&certs) {
        Ok(()) => {
            return Ok(DevCerts {
                reused: true,
                ..certs
            })
        }
        Err(reason) if certs.ca_cert.exists() || certs.cert.exists() => {
            tracing::info!(dir = %dir.display(), %reason, "regenerating dev certificates");
        }
        Err(_) => {}
    }
    let sans: Vec<String> = DEV_SANS.iter().map(|s| (*s).to_owned()).collect();
    let issued =
        issue("localhost", &sans, DEV_DAYS, DEV_DAYS).context("cannot issue dev certificates")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_pem(&certs.ca_cert, &issued.ca_cert_pem, false)?;
    write_pem(&certs.cert, &issued.cert_pem, false)?;
    write_pem(&certs.key, &issued.key_pem, true)?;
    Ok(certs)
}

/// Why the dev set cannot be reused, if it cannot: the serving certificate must chain to
/// `ca.pem`, be valid a day from now for every dev name, and match its key. The check is the
/// verification a client would do, run at "now + 1 day".
fn dev_certs_usable(certs: &DevCerts) -> Result<(), String> {
    let read = |path: &Path| fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let ca_pem = read(&certs.ca_cert)?;
    let cert_pem = read(&certs.cert)?;
    let key_pem = read(&certs.key)?;

    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&ca_pem) {
        let ca = ca.map_err(|e| format!("{}: {e}", certs.ca_cert.display()))?;
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", certs.ca_cert.display()))?;
    }
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", certs.cert.display()))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| format!("{}: no certificate", certs.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: {e}", certs.key.display()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            certs.key.display(),
            certs.cert.display()
        )
    })?;

    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
    let tomorrow = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        + DEV_MIN_REMAINING;
    for name in DEV_SANS {
        let server_name = ServerName::try_from(*name).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(
                leaf,
                intermediates,
                &server_name,
                &[],
                UnixTime::since_unix_epoch(tomorrow),
            )
            .map_err(|e| format!("{} for {name} a day from now: {e}", certs.cert.display()))?;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader (a running server polling the
/// files) never sees half a PEM; private keys are created 0600.
fn write_pem(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    // A leftover temporary file may carry other permissions: start clean.
    let _ = fs::remove_file(&tmp);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn days_duration(days: u32) -> Duration {
    Duration::from_secs(u64::from(days) * SECONDS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rg-certs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn service_sans_cover_what_the_api_server_dials() {
        assert_eq!(
            service_sans("guard", "ops"),
            [
                "guard",
                "guard.ops",
                "guard.ops.svc",
                "guard.ops.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn dev_certs_are_reused_while_valid_and_regenerated_when_broken() {
        let dir = temp_dir("dev");
        let first = ensure_dev_certs(&dir).unwrap();
        assert!(!first.reused);
        let cert = fs::read(&first.cert).unwrap();

        let second = ensure_dev_certs(&dir).unwrap();
        assert!(second.reused);
        assert_eq!(fs::read(&second.cert).unwrap(), cert);

        // A key that is not the certificate's: regenerate rather than serve a broken pair.
        let other = issue("other", &["localhost".into()], 1, 1).unwrap();
        fs::write(&first.key, other.key_pem).unwrap();
        let third = ensure_dev_certs(&dir).unwrap();
        assert!(!third.reused);
        assert_ne!(fs::read(&third.cert).unwrap(), cert);
        assert!(dev_certs_usable(&third).is_ok());

        // Expiring within a day: not reused.
        let short = issue("localhost", &["localhost".into()], 0, 1).unwrap();
        fs::write(&third.ca_cert, short.ca_cert_pem).unwrap();
        fs::write(&third.cert, short.cert_pem).unwrap();
        fs::write(&third.key, short.key_pem).unwrap();
        let reason = dev_certs_usable(&third).unwrap_err();
        assert!(reason.contains("a day from now"), "{reason}");
        let _ = fs::remove_dir_all(&dir);
    }
}
