//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>, protocol v1): the signature
//! covers the pre-authentication encoding of the payload type and payload, never the JSON
//! around them. model_signing signs the PAE with ECDSA and stores the DER signature
//! (`_signing/sign_ec_key.py`, `_signing/sign_sigstore_pb.py::pae`).

use super::error::SigningError;
use super::keys::{PrivateKey, PublicKey};

/// The payload type of an in-toto statement, the only one model signatures use.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in bytes as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len());
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// DER-encoded ECDSA signature over the PAE.
    pub sig: Vec<u8>,
    /// Key id; model_signing writes `""` in key mode.
    pub keyid: String,
}

/// A signed payload with its type and signatures (the decoded bytes, not base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

impl Envelope {
    /// Signs an in-toto payload with `key`.
    pub fn sign_in_toto(payload: Vec<u8>, key: &PrivateKey) -> Self {
        let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
        Self {
            payload,
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig,
                keyid: String::new(),
            }],
        }
    }

    /// Checks that this is an in-toto envelope and that one of its signatures verifies with
    /// `key`; returns the payload.
    pub fn verify_in_toto(&self, key: &PublicKey) -> Result<&[u8], SigningError> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(SigningError::PayloadType {
                found: self.payload_type.clone(),
                expected: IN_TOTO_PAYLOAD_TYPE,
            });
        }
        let message = pae(&self.payload_type, &self.payload);
        let mut last = SigningError::NoSignature;
        for signature in &self.signatures {
            match key.verify(&message, &signature.sig) {
                Ok(()) => return Ok(&self.payload),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let key = PrivateKey::generate();
        let mut env = Envelope::sign_in_toto(b"{\"a\":1}".to_vec(), &key);
        assert_eq!(env.verify_in_toto(key.public_key()).expect("verifies"), b"{\"a\":1}");

        let other = PrivateKey::generate();
        let err = env.verify_in_toto(other.public_key()).expect_err("must fail");
        assert!(matches!(err, SigningError::BadSignature { .. }), "{err}");

        env.payload.push(b' ');
        assert!(env.verify_in_toto(key.public_key()).is_err());
        env.signatures.clear();
        assert!(matches!(
            env.verify_in_toto(key.public_key()),
            Err(SigningError::NoSignature)
        ));
    }
}
