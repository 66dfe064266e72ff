//! The Sigstore bundle (v0.3 JSON) that holds a key-mode model signature, byte for byte as
//! model_signing 1.1.1 writes `model.sig` (`_signing/sign_ec_key.py`, `Signer.sign` and
//! `_get_verification_material`; `_signing/sign_sigstore_pb.py`, `Signature.write/read`):
//!
//! ```json
//! {"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial":{"publicKey":{"hint":"<hex sha256 of the SPKI PEM>"},"tlogEntries":[]},
//!  "dsseEnvelope":{"payload":"<base64>","payloadType":"application/vnd.in-toto+json",
//!                  "signatures":[{"sig":"<base64 DER>","keyid":""}]}}
//! ```
//!
//! Compact JSON, no trailing newline, standard padded base64. Key mode has no transparency
//! log entries and no timestamps. Reading tolerates what model_signing tolerates: a missing
//! `hint` (older signers) and `rawBytes`/`keyDetails` beside it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dsse::{Envelope, EnvelopeSignature};
use super::error::SigningError;
use crate::fsx;

/// The bundle media type model_signing 1.x writes and reads in key mode.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A key-mode Sigstore bundle: the signer's key hint and the signed DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// `verificationMaterial.publicKey.hint`; `None` in bundles from pre-1.1 signers.
    pub key_hint: Option<String>,
    pub envelope: Envelope,
}

impl Bundle {
    /// The bundle as model_signing writes it.
    pub fn to_json(&self) -> String {
        let wire = BundleWire::from(self);
        // Plain structs of strings and vectors: serialization cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Parses a bundle, naming what is wrong with it.
    pub fn from_json(text: &str) -> Result<Self, SigningError> {
        let wire: BundleWire = serde_json::from_str(text).map_err(SigningError::bundle)?;
        if wire.media_type != BUNDLE_MEDIA_TYPE {
            return Err(SigningError::BundleMediaType {
                found: wire.media_type,
                expected: BUNDLE_MEDIA_TYPE,
            });
        }
        let material = wire.verification_material;
        if material.certificate.is_some() || material.x509_certificate_chain.is_some() {
            return Err(SigningError::NotKeyMode {
                found: "it carries a signing certificate",
            });
        }
        let Some(public_key) = material.public_key else {
            return Err(SigningError::NotKeyMode {
                found: "it has no publicKey",
            });
        };
        let Some(envelope) = wire.dsse_envelope else {
            return Err(SigningError::bundle("it has no dsseEnvelope"));
        };
        Ok(Self {
            key_hint: public_key.hint.filter(|h| !h.is_empty()),
            envelope: envelope.decode()?,
        })
    }

    /// Reads a bundle file (`model.sig`).
    pub fn read(path: &Path) -> Result<Self, SigningError> {
        let text = std::fs::read_to_string(path).map_err(SigningError::io("read signature", path))?;
        Self::from_json(&text)
    }

    /// Writes the bundle atomically.
    pub fn write(&self, path: &Path) -> Result<(), SigningError> {
        fsx::write_atomic(path, self.to_json().as_bytes()).map_err(SigningError::io("write signature", path))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleWire {
    media_type: String,
    verification_material: MaterialWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<EnvelopeWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyWire>,
    #[serde(default)]
    tlog_entries: Vec<Value>,
    #[serde(default, skip_serializing)]
    certificate: Option<Value>,
    #[serde(default, skip_serializing)]
    x509_certificate_chain: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeWire {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<SignatureWire>,
}

#[derive(Serialize, Deserialize)]
struct SignatureWire {
    sig: String,
    #[serde(default)]
    keyid: String,
}

impl From<&Bundle> for BundleWire {
    fn from(bundle: &Bundle) -> Self {
        let env = &bundle.envelope;
        let signatures = env
            .signatures
            .iter()
            .map(|s| SignatureWire {
                sig: STANDARD.encode(&s.sig),
                keyid: s.keyid.clone(),
            })
            .collect();
        Self {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            verification_material: MaterialWire {
                public_key: Some(PublicKeyWire {
                    hint: bundle.key_hint.clone(),
                }),
                tlog_entries: Vec::new(),
                certificate: None,
                x509_certificate_chain: None,
            },
            dsse_envelope: Some(EnvelopeWire {
                payload: STANDARD.encode(&env.payload),
                payload_type: env.payload_type.clone(),
                signatures,
            }),
        }
    }
}

impl EnvelopeWire {
    /// Decodes the base64 fields.
    fn decode(self) -> Result<Envelope, SigningError> {
        let payload = decode_base64(&self.payload, "dsseEnvelope.payload")?;
        let signatures = self
            .signatures
            .into_iter()
            .map(|s| {
                Ok(EnvelopeSignature {
                    sig: decode_base64(&s.sig, "dsseEnvelope.signatures[].sig")?,
                    keyid: s.keyid,
                })
            })
            .collect::<Result<Vec<_>, SigningError>>()?;
        Ok(Envelope {
            payload,
            payload_type: self.payload_type,
            signatures,
        })
    }
}

/// Standard base64, or the URL-safe alphabet DSSE also allows.
fn decode_base64(text: &str, field: &'static str) -> Result<Vec<u8>, SigningError> {
    STANDARD
        .decode(text)
        .or_else(|e| URL_SAFE.decode(text).map_err(|_| e))
        .map_err(|e| SigningError::BadBase64 {
            field,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle {
        Bundle {
            key_hint: Some("ab".repeat(32)),
            envelope: Envelope {
                payload: b"{}".to_vec(),
                payload_type: "application/vnd.in-toto+json".to_owned(),
                signatures: vec![EnvelopeSignature {
                    sig: vec![0x30, 0x06],
                    keyid: String::new(),
                }],
            },
        }
    }

    #[test]
    fn writes_the_model_signing_layout() {
        let hint = "ab".repeat(32);
        let expected = format!(
            "{{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\
             \"verificationMaterial\":{{\"publicKey\":{{\"hint\":\"{hint}\"}},\"tlogEntries\":[]}},\
             \"dsseEnvelope\":{{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\",\
             \"signatures\":[{{\"sig\":\"MAY=\",\"keyid\":\"\"}}]}}}}"
        );
        assert_eq!(sample().to_json(), expected);
        assert_eq!(Bundle::from_json(&expected).expect("parses"), sample());
    }

    #[test]
    fn names_what_is_wrong() {
        let err = Bundle::from_json("{not json").expect_err("must fail");
        assert!(err.to_string().starts_with("not a Sigstore bundle"), "{err}");

        let v02 = sample().to_json().replace("v0.3", "v0.2");
        let err = Bundle::from_json(&v02).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("media type 'application/vnd.dev.sigstore.bundle.v0.2+json'"),
            "{err}"
        );

        let bad = sample().to_json().replace("e30=", "e30*");
        let err = Bundle::from_json(&bad).expect_err("must fail");
        assert!(
            err.to_string().contains("'dsseEnvelope.payload' is not valid base64"),
            "{err}"
        );

        let cert = sample().to_json().replace("\"publicKey\"", "\"certificate\"");
        let err = Bundle::from_json(&cert).expect_err("must fail");
        assert!(matches!(err, SigningError::NotKeyMode { .. }), "{err}");
    }

    #[test]
    fn accepts_older_material_without_hint() {
        let old = sample()
            .to_json()
            .replace(&format!("\"hint\":\"{}\"", "ab".repeat(32)), "\"rawBytes\":\"AA==\"");
        assert_eq!(Bundle::from_json(&old).expect("parses").key_hint, None);
    }
}
