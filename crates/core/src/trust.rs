//! Trusted certificates (Connectware's `/api/certificates`): the issuers whose client
//! certificates the HTTPS listener accepts. The built-in CA is always the first of them and
//! cannot be removed; administrators add and remove others as PEM.

use crate::auth::Principal;
use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::model::{GrantMethod, User};
use crate::pki::CertificateInfo;
use crate::store::TrustedCertificate;
use crate::Gatehouse;

/// A trusted certificate as the API shows it.
#[derive(Debug, Clone)]
pub struct TrustedView {
    /// The parsed certificate.
    pub info: CertificateInfo,
    /// False for the built-in CA.
    pub removable: bool,
}

impl Gatehouse {
    /// The built-in CA (when there is one) and every stored trusted certificate.
    pub async fn trusted_certificates(&self) -> CoreResult<Vec<TrustedView>> {
        let mut views = Vec::new();
        if let Some(pki) = self.pki() {
            views.push(TrustedView {
                info: CertificateInfo::from_der(pki.authority.certificate_der())?,
                removable: false,
            });
        }
        for stored in self.store.trusted_certificates().await? {
            let mut parsed = CertificateInfo::parse_bundle(&stored.pem)
                .map_err(|error| CoreError::internal(format!("stored certificate: {error}")))?;
            if let Some(info) = parsed.pop() {
                if views.iter().all(|view| view.info.id != info.id) {
                    views.push(TrustedView {
                        info,
                        removable: true,
                    });
                }
            }
        }
        Ok(views)
    }

    /// One trusted certificate by id; `NotFound` otherwise.
    pub async fn trusted_certificate(&self, id: &str) -> CoreResult<TrustedView> {
        self.trusted_certificates()
            .await?
            .into_iter()
            .find(|view| view.info.id == id)
            .ok_or(CoreError::not_found("certificate"))
    }

    /// Adds every certificate of a PEM bundle (all or none are read; ones already trusted are
    /// skipped) and returns the ones added.
    pub async fn add_trusted_certificates(&self, pem: &str) -> CoreResult<Vec<TrustedView>> {
        let parsed = CertificateInfo::parse_bundle(pem)?;
        let builtin = self.pki().map(|pki| pki.authority.fingerprint());
        let now = self.clock.now_millis();
        let candidates: Vec<TrustedCertificate> = parsed
            .iter()
            .filter(|info| builtin.as_deref() != Some(info.id.as_str()))
            .map(|info| TrustedCertificate {
                id: info.id.clone(),
                pem: info.pem(),
                created_at: now,
            })
            .collect();
        let added = self.store.insert_trusted_certificates(candidates).await?;
        tracing::info!(count = added.len(), "trusted certificates added");
        let mut views = Vec::new();
        for info in parsed {
            if added.contains(&info.id)
                && views
                    .iter()
                    .all(|view: &TrustedView| view.info.id != info.id)
            {
                views.push(TrustedView {
                    info,
                    removable: true,
                });
            }
        }
        Ok(views)
    }

    /// Removes a trusted certificate; the built-in CA is refused (403), unknown ids are
    /// `NotFound`.
    pub async fn delete_trusted_certificate(&self, id: &str) -> CoreResult<()> {
        if self
            .pki()
            .is_some_and(|pki| pki.authority.fingerprint() == id)
        {
            return Err(CoreError::Forbidden {
                reason: "the built-in certificate authority cannot be removed".to_owned(),
            });
        }
        if !self.store.delete_trusted_certificate(id).await? {
            return Err(CoreError::not_found("certificate"));
        }
        tracing::info!(id, "trusted certificate removed");
        Ok(())
    }

    /// The DER certificates client certificates may chain to: the CA and the stored ones.
    pub async fn client_trust_anchors(&self) -> CoreResult<Vec<Vec<u8>>> {
        Ok(self
            .trusted_certificates()
            .await?
            .into_iter()
            .map(|view| view.info.der)
            .collect())
    }

    /// The user a client certificate names, for the HTTPS listener, which verified its chain
    /// to the trust anchors: the subject's common name is the username, the user holds the
    /// certificate grant and is enabled, and the binding rule of
    /// [`Gatehouse::certificate_binding_allows`] holds (the same rule as brokers' certificate
    /// listeners).
    pub async fn certificate_user(&self, der: &[u8]) -> CoreResult<User> {
        const REFUSED: CoreError = CoreError::Unauthenticated(AuthFailure::BadCredentials);
        let info = CertificateInfo::from_der(der).map_err(|_| REFUSED)?;
        let name = info.issued_to.common_name.ok_or(REFUSED)?;
        let user = self
            .store
            .credentials_by_username(&name)
            .await?
            .ok_or(REFUSED)?
            .user;
        if !user.allows_grant(GrantMethod::Certificate) {
            return Err(REFUSED);
        }
        if !user.credentials_enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        if !self
            .certificate_binding_allows(user.id, Some(&info.sha256))
            .await?
        {
            return Err(REFUSED);
        }
        Ok(user)
    }

    /// Authenticates an HTTPS request by its client certificate alone; refused when the
    /// user's password is required too (that user logs in with `POST /api/login` over the
    /// same connection).
    pub async fn authenticate_certificate(&self, der: &[u8]) -> CoreResult<Principal> {
        let user = self.certificate_user(der).await?;
        if !user.grants_satisfied(false, true) {
            return Err(CoreError::unauthenticated(AuthFailure::BadCredentials));
        }
        self.principal(user, None, None).await
    }
}
