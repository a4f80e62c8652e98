//! Who may call the evaluation API (`/v1/...` on the HTTPS port), and as whom it evaluates.
//!
//! Two ways in, configurable with `--api-auth`:
//! - a bearer token, checked with a TokenReview against the API server (a pipeline's service
//!   account token works as is); answers are cached briefly by a digest of the token, so a
//!   pipeline's burst of calls costs one review;
//! - a client certificate signed by `--api-client-ca`; the subject's CN is the user and its O
//!   entries the groups, as Kubernetes reads them. The handshake asks for a certificate without
//!   requiring one and proves the client holds its key, but does not judge the chain: that is
//!   done after the handshake ([`crate::server::tls::ClientCertCheck`]) and only the API acts on
//!   it, answering 401 with the reason. Refusing at the TLS layer instead would also cut off the
//!   admission endpoints for any client whose certificate this CA did not sign, which includes an
//!   API server configured to present its own client certificate to webhooks (an
//!   `AdmissionConfiguration` kubeconfig): every write in the cluster would fail on an API
//!   setting, and the caller would see only a TLS alert.
//!
//! The admission endpoints never consult any of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::evaluate::Requester;

/// `--api-auth`: how API callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiAuthMode {
    /// Nobody is asked who they are (the default with `serve --dev`).
    None,
    /// `Authorization: Bearer TOKEN`, checked with a TokenReview (the default otherwise).
    Token,
    /// A client certificate signed by `--api-client-ca`.
    ClientCert,
    /// Either a client certificate or a bearer token.
    Any,
}

impl ApiAuthMode {
    /// Whether bearer tokens are accepted.
    pub fn accepts_tokens(self) -> bool {
        matches!(self, ApiAuthMode::Token | ApiAuthMode::Any)
    }

    /// Whether client certificates are accepted (the TLS config then asks for one).
    pub fn accepts_client_certs(self) -> bool {
        matches!(self, ApiAuthMode::ClientCert | ApiAuthMode::Any)
    }

    /// The mode as the flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiAuthMode::None => "none",
            ApiAuthMode::Token => "token",
            ApiAuthMode::ClientCert => "client-cert",
            ApiAuthMode::Any => "any",
        }
    }
}

/// Why a caller is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or credentials the API server (or the CA) does not accept.
    #[error("{0}")]
    Unauthenticated(String),
    /// The API server could not be asked.
    #[error("cannot check the token: {0}")]
    Unavailable(String),
}

/// What the connection's client certificate says, set on every request of a connection that
/// presented one (when the API accepts certificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertificate {
    /// Signed by `--api-client-ca`, valid now and issued for client authentication: who it names.
    Verified(Requester),
    /// Presented but not accepted, and why (another CA, expired, not for client authentication,
    /// no subject CN to name the user).
    Refused(String),
}

/// What a TokenReview said about a token.
pub type TokenAnswer = Result<Requester, AuthError>;

/// Asks whether a bearer token is valid. The live one posts a TokenReview.
pub trait TokenReviewer: Send + Sync {
    /// Reviews `token`.
    fn review(
        &self,
        token: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TokenAnswer> + Send + '_>>;
}

/// TokenReviews with the kube client (`authentication.k8s.io/v1`, `create tokenreviews`).
pub struct KubeTokenReviewer {
    client: kube::Client,
    /// `spec.audiences` to ask for; empty: the API server's own.
    audiences: Vec<String>,
}

impl KubeTokenReviewer {
    /// A reviewer using `client`.
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        Self { client, audiences }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review(
        &self,
        token: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TokenAnswer> + Send + '_>> {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        Box::pin(async move {
            let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token),
                    audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
                },
                ..TokenReview::default()
            };
            let answer = api
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            if status.authenticated != Some(true) {
                let why = status
                    .error
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "the API server did not authenticate it".to_owned());
                return Err(AuthError::Unauthenticated(format!(
                    "the bearer token is not valid: {why}"
                )));
            }
            let user = status.user.unwrap_or_default();
            Ok(Requester {
                username: user.username.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
            })
        })
    }
}

/// Most tokens remembered; past it the cache starts over (a flood of distinct bad tokens must
/// not grow memory).
const MAX_CACHED_TOKENS: usize = 1024;
/// How long a rejection is remembered (shorter: a token just created should work soon).
const NEGATIVE_TTL: Duration = Duration::from_secs(2);

/// The API's authenticator: the mode, the token reviewer and its cache.
pub struct ApiAuth {
    mode: ApiAuthMode,
    reviewer: Option<Arc<dyn TokenReviewer>>,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], (Instant, TokenAnswer)>>,
}

impl ApiAuth {
    /// An authenticator; `reviewer` is needed when the mode accepts tokens (without one every
    /// token is answered "cannot check").
    pub fn new(mode: ApiAuthMode, reviewer: Option<Arc<dyn TokenReviewer>>, ttl: Duration) -> Self {
        Self {
            mode,
            reviewer,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// No authentication (`serve --dev`, tests).
    pub fn none() -> Self {
        Self::new(ApiAuthMode::None, None, Duration::ZERO)
    }

    /// The mode.
    pub fn mode(&self) -> ApiAuthMode {
        self.mode
    }

    /// Who is calling: a verified client certificate's identity, else the bearer token's, else
    /// an error saying what to send (and why a certificate that was presented is not accepted).
    /// With no authentication, the default requester.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Requester, AuthError> {
        if self.mode == ApiAuthMode::None {
            return Ok(Requester::default());
        }
        let mut refused_certificate = None;
        if self.mode.accepts_client_certs() {
            match certificate {
                Some(ClientCertificate::Verified(requester)) => return Ok(requester.clone()),
                Some(ClientCertificate::Refused(why)) => refused_certificate = Some(why.as_str()),
                None => {}
            }
        }
        let token = authorization.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
                .filter(|t| !t.is_empty())
        });
        let certificate_refused =
            |why: &str| format!("the client certificate is not accepted: {why}");
        match (self.mode.accepts_tokens(), token, refused_certificate) {
            // As the API server's union of authenticators: a valid token is enough even when a
            // certificate it would not accept came along.
            (true, Some(token), refused) => {
                self.review_cached(token)
                    .await
                    .map_err(|error| match (error, refused) {
                        (AuthError::Unauthenticated(message), Some(why)) => {
                            AuthError::Unauthenticated(format!(
                                "{message}; and {}",
                                certificate_refused(why)
                            ))
                        }
                        (error, _) => error,
                    })
            }
            (_, _, Some(why)) => Err(AuthError::Unauthenticated(certificate_refused(why))),
            (true, None, None) if self.mode.accepts_client_certs() => {
                Err(AuthError::Unauthenticated(
                    "send a client certificate signed by the API's CA, or Authorization: Bearer TOKEN"
                        .to_owned(),
                ))
            }
            (true, None, None) => Err(AuthError::Unauthenticated(
                "send Authorization: Bearer TOKEN (a service account token works)".to_owned(),
            )),
            (false, _, None) => Err(AuthError::Unauthenticated(
                "present a client certificate signed by the API's CA (--api-client-ca)".to_owned(),
            )),
        }
    }

    async fn review_cached(&self, token: String) -> Result<Requester, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((expires, answer)) = self.lock().get(&key) {
            if *expires > now {
                return answer.clone();
            }
        }
        let Some(reviewer) = &self.reviewer else {
            return Err(AuthError::Unavailable(
                "no Kubernetes API server to send a TokenReview to".to_owned(),
            ));
        };
        let answer = reviewer.review(token).await;
        let ttl = match &answer {
            Ok(_) => Some(self.ttl),
            Err(AuthError::Unauthenticated(_)) => Some(NEGATIVE_TTL.min(self.ttl)),
            // Not remembered: the next call asks again.
            Err(AuthError::Unavailable(_)) => None,
        };
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.retain(|_, (expires, _)| *expires > now);
                if cache.len() >= MAX_CACHED_TOKENS {
                    cache.clear();
                }
            }
            cache.insert(key, (now + ttl, answer.clone()));
        }
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, TokenAnswer)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user (subject CN) and groups (subject O) of a DER certificate, as Kubernetes reads
/// client certificates. `None` when the certificate has no CN.
pub fn certificate_identity(der: &[u8]) -> Option<Requester> {
    let subject = der::subject(der)?;
    let mut username = None;
    let mut groups = Vec::new();
    for (oid, value) in der::attributes(subject) {
        match oid {
            der::OID_COMMON_NAME => username = Some(value),
            der::OID_ORGANIZATION => groups.push(value),
            _ => {}
        }
    }
    Some(Requester {
        username: username?,
        groups,
    })
}

/// Just enough DER to read a certificate's subject: the TLS stack has already verified the
/// certificate, this only names who it is.
mod der {
    /// 2.5.4.3
    pub const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// 2.5.4.10
    pub const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

    /// One TLV: (tag, contents, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let length = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, &rest[count..])
        };
        if rest.len() < length {
            return None;
        }
        Some((tag, &rest[..length], &rest[length..]))
    }

    /// The subject Name of a Certificate (its contents, a sequence of RDN sets).
    pub fn subject(certificate: &[u8]) -> Option<&[u8]> {
        let (_, certificate, _) = tlv(certificate)?;
        let (_, tbs, _) = tlv(certificate)?;
        let mut rest = tbs;
        // [0] version is optional; then serialNumber, signature, issuer, validity, subject.
        let (tag, _, after) = tlv(rest)?;
        if tag == 0xa0 {
            rest = after;
        }
        for _ in 0..4 {
            let (_, _, after) = tlv(rest)?;
            rest = after;
        }
        let (tag, subject, _) = tlv(rest)?;
        (tag == 0x30).then_some(subject)
    }

    /// Every (type OID, string value) of a Name.
    pub fn attributes(mut name: &[u8]) -> Vec<(&[u8], String)> {
        let mut found = Vec::new();
        while let Some((_, set, rest)) = tlv(name) {
            let mut entries = set;
            while let Some((_, pair, more)) = tlv(entries) {
                if let Some((0x06, oid, value)) = tlv(pair) {
                    if let Some((_, text, _)) = tlv(value) {
                        if let Ok(text) = std::str::from_utf8(text) {
                            found.push((oid, text.to_owned()));
                        }
                    }
                }
                entries = more;
            }
            name = rest;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn certificate_subject_names_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(vec!["ci".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ci-pipeline");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "release-team");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let identity = certificate_identity(cert.der()).unwrap();
        assert_eq!(identity.username, "ci-pipeline");
        assert_eq!(identity.groups, ["release-team"]);
        assert_eq!(certificate_identity(b"\x30\x03garbage"), None);
        assert_eq!(certificate_identity(&[]), None);
    }

    struct Counting {
        calls: AtomicUsize,
    }

    impl TokenReviewer for Counting {
        fn review(
            &self,
            token: String,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = TokenAnswer> + Send + '_>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if token == "good" {
                    Ok(Requester {
                        username: "system:serviceaccount:ci:deployer".into(),
                        groups: vec![],
                    })
                } else {
                    Err(AuthError::Unauthenticated("bad".into()))
                }
            })
        }
    }

    #[tokio::test]
    async fn tokens_are_reviewed_once_then_cached() {
        let reviewer = Arc::new(Counting {
            calls: AtomicUsize::new(0),
        });
        let auth = ApiAuth::new(
            ApiAuthMode::Token,
            Some(reviewer.clone()),
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            let who = auth.authenticate(Some("Bearer good"), None).await.unwrap();
            assert_eq!(who.username, "system:serviceaccount:ci:deployer");
        }
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            auth.authenticate(Some("Bearer bad"), None).await,
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(None, None).await,
            Err(AuthError::Unauthenticated(m)) if m.contains("Bearer")
        ));
        assert!(matches!(
            auth.authenticate(Some("Basic abc"), None).await,
            Err(AuthError::Unauthenticated(_))
        ));
        // A certificate is not enough when only tokens are accepted.
        let cert = ClientCertificate::Verified(Requester::default());
        assert!(auth.authenticate(None, Some(&cert)).await.is_err());
        let either = ApiAuth::new(ApiAuthMode::Any, None, Duration::from_secs(1));
        assert_eq!(
            either.authenticate(None, Some(&cert)).await.unwrap(),
            Requester::default()
        );
        assert!(matches!(
            either.authenticate(Some("Bearer x"), None).await,
            Err(AuthError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_refused_certificate_is_explained_and_a_valid_token_still_counts() {
        let reviewer = Arc::new(Counting {
            calls: AtomicUsize::new(0),
        });
        let refused = ClientCertificate::Refused("it has expired".into());
        let certs_only = ApiAuth::new(ApiAuthMode::ClientCert, None, Duration::from_secs(1));
        assert_eq!(
            certs_only.authenticate(None, Some(&refused)).await,
            Err(AuthError::Unauthenticated(
                "the client certificate is not accepted: it has expired".into()
            ))
        );
        let either = ApiAuth::new(ApiAuthMode::Any, Some(reviewer), Duration::from_secs(1));
        let who = either
            .authenticate(Some("Bearer good"), Some(&refused))
            .await
            .unwrap();
        assert_eq!(who.username, "system:serviceaccount:ci:deployer");
        match either
            .authenticate(Some("Bearer bad"), Some(&refused))
            .await
        {
            Err(AuthError::Unauthenticated(message)) => {
                assert!(
                    message.contains("bad") && message.contains("expired"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
