//! PEM blocks and naming the algorithm inside a key, so an unsupported key is refused by name
//! ("ed25519 keys are not supported") instead of with a parser's complaint.

use p256::pkcs8::der::pem;
use p256::pkcs8::spki::AlgorithmIdentifierRef;

use super::error::SigningError;
use super::keys::Curve;

/// A PEM block's label (`PRIVATE KEY`, `PUBLIC KEY`, ...) and its decoded DER bytes.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// The algorithm a key's `AlgorithmIdentifier` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyAlgorithm {
    /// ECDSA on a curve model signing accepts.
    Ec(Curve),
    /// Anything else, named for the user (`ed25519`, `RSA`, `EC secp256k1`).
    Other(String),
}

/// The first key block in `text`, skipping `EC PARAMETERS` (which `openssl ecparam -genkey`
/// writes before the key unless told `-noout`).
pub(crate) fn key_block(text: &str, expected: &'static str) -> Result<PemBlock, SigningError> {
    let not_pem = |reason: String| SigningError::NotPem { expected, reason };
    let mut rest = text;
    loop {
        let start = rest
            .find("-----BEGIN ")
            .ok_or_else(|| not_pem("no `-----BEGIN` line".to_owned()))?;
        rest = &rest[start..];
        let label_end = rest["-----BEGIN ".len()..]
            .find("-----")
            .ok_or_else(|| not_pem("unterminated `-----BEGIN` line".to_owned()))?;
        let label = &rest["-----BEGIN ".len().."-----BEGIN ".len() + label_end];
        let end_line = format!("-----END {label}-----");
        let end = rest
            .find(&end_line)
            .ok_or_else(|| not_pem(format!("no `{end_line}` line")))?;
        let block = &rest[..end + end_line.len()];
        if label != "EC PARAMETERS" {
            return decode_block(block, expected);
        }
        rest = &rest[end + end_line.len()..];
    }
}

/// Decodes one `BEGIN`..`END` block.
fn decode_block(block: &str, expected: &'static str) -> Result<PemBlock, SigningError> {
    let mut normalized = block.replace("\r\n", "\n");
    normalized.push('\n');
    let (label, der) = pem::decode_vec(normalized.as_bytes()).map_err(|e| SigningError::NotPem {
        expected,
        reason: e.to_string(),
    })?;
    Ok(PemBlock {
        label: label.to_owned(),
        der,
    })
}

/// Names the algorithm of a PKCS#8 or SPKI `AlgorithmIdentifier`.
pub(crate) fn algorithm_of(alg: &AlgorithmIdentifierRef<'_>) -> KeyAlgorithm {
    let name = match alg.oid.to_string().as_str() {
        "1.2.840.10045.2.1" => return ec_curve_of(alg),
        "1.3.101.112" => "ed25519",
        "1.3.101.113" => "ed448",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10040.4.1" => "DSA",
        other => return KeyAlgorithm::Other(format!("unknown (algorithm OID {other})")),
    };
    KeyAlgorithm::Other(name.to_owned())
}

/// The curve named by an `id-ecPublicKey` identifier's parameters.
fn ec_curve_of(alg: &AlgorithmIdentifierRef<'_>) -> KeyAlgorithm {
    let Ok(curve) = alg.parameters_oid() else {
        return KeyAlgorithm::Other("EC (explicit curve parameters)".to_owned());
    };
    match curve.to_string().as_str() {
        "1.2.840.10045.3.1.7" => KeyAlgorithm::Ec(Curve::P256),
        "1.3.132.0.34" => KeyAlgorithm::Ec(Curve::P384),
        "1.3.132.0.35" => KeyAlgorithm::Ec(Curve::P521),
        "1.3.132.0.10" => KeyAlgorithm::Other("EC secp256k1".to_owned()),
        other => KeyAlgorithm::Other(format!("EC (curve OID {other})")),
    }
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase or uppercase hex to bytes; `None` when it is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("+1"), None);
    }

    #[test]
    fn skips_ec_parameters_and_reports_missing_blocks() {
        let text = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        let err = key_block(text, "private key").expect_err("only parameters");
        assert!(err.to_string().contains("no `-----BEGIN` line"), "{err}");
        let err = key_block("hello", "public key").expect_err("no PEM");
        assert!(err.to_string().starts_with("not a PEM public key"), "{err}");
    }
}
