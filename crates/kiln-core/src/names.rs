//! Validated identifiers: model and alias names, blob digests and `model@version` references.
//!
//! Every name is checked here before any path is built from it (DESIGN §2), so the rest of the
//! code can join these into paths without re-checking for `../`, `/` or other surprises.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name, digest or reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name {0:?}: use 1-64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
    Name(String),
    #[error("invalid digest {0:?}: expected \"sha256:\" followed by 64 lowercase hex digits")]
    Digest(String),
    #[error(
        "invalid reference {0:?}: expected <model>@<version number or alias>, e.g. fmnist-cnn@3 or fmnist-cnn@production"
    )]
    Reference(String),
}

fn is_valid_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 64
        && allowed(&bytes[0])
        && bytes[1..].iter().all(|b| allowed(b) || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! validated_string {
    ($(#[$doc:meta])* $ty:ident, $check:expr, $err:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Checks `s` and wraps it.
            pub fn new(s: &str) -> Result<Self, NameError> {
                if $check(s) { Ok(Self(s.to_owned())) } else { Err($err(s.to_owned())) }
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A model or alias name matching `[a-z0-9][a-z0-9._-]{0,63}`.
    Name,
    is_valid_name,
    NameError::Name
);

validated_string!(
    /// A content digest, `sha256:` and 64 lowercase hex digits.
    Digest,
    is_valid_digest,
    NameError::Digest
);

fn is_valid_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

impl Digest {
    /// The 64 hex digits after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The 32 bytes of the SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            // Validated at construction: 64 lowercase hex digits.
            *byte = u8::from_str_radix(&self.hex()[2 * i..2 * i + 2], 16).unwrap_or_default();
        }
        out
    }

    /// Wraps a freshly computed SHA-256.
    pub fn from_sha256(bytes: &[u8; 32]) -> Self {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }
}

/// Which version of a model a reference selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A version number (`fmnist-cnn@3`).
    Version(u32),
    /// An alias (`fmnist-cnn@production`).
    Alias(Name),
    /// No `@`: the newest version.
    Latest,
}

/// `model[@version|alias]`, as typed on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub model: Name,
    pub selector: Selector,
}

impl ModelRef {
    /// `model@version`.
    pub fn version(model: Name, version: u32) -> Self {
        Self {
            model,
            selector: Selector::Version(version),
        }
    }
}

impl FromStr for ModelRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::Reference(s.to_owned());
        let (model, selector) = match s.split_once('@') {
            None => (s, Selector::Latest),
            Some((model, sel)) => (
                model,
                Selector::parse(sel).map_err(|e| if matches!(e, NameError::Name(_)) { e } else { bad() })?,
            ),
        };
        Ok(Self {
            model: Name::new(model)?,
            selector,
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "{}@{v}", self.model),
            Selector::Alias(a) => write!(f, "{}@{a}", self.model),
            Selector::Latest => write!(f, "{}", self.model),
        }
    }
}

impl Selector {
    /// Parses what follows the `@`: digits are a version number, anything else an alias.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .map(Self::Version)
                .map_err(|_| NameError::Reference(text.to_owned()));
        }
        Name::new(text).map(Self::Alias)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "{v}"),
            Self::Alias(a) => write!(f, "{a}"),
            Self::Latest => f.write_str("latest"),
        }
    }
}

/// On the wire a selector is what follows the `@`: `"3"` or `"production"` (a bare number
/// is accepted too). The newest version is the field left out, never a string.
impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Latest => Err(serde::ser::Error::custom(
                "the newest version is written by leaving the field out",
            )),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(u32),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => Ok(Self::Version(n)),
            Text::Text(s) => Self::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// On the wire a reference is its text, `model[@version|alias]`.
impl Serialize for ModelRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ModelRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for ok in ["a", "fmnist-cnn", "m.v2_x", "0abc", &"a".repeat(64)] {
            assert!(Name::new(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "Upper",
            "-lead",
            ".hidden",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn digests_are_strict() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Digest::new(&good).map(|d| d.hex().len()), Ok(64));
        for bad in [
            "sha256:".to_owned(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha512:{}", "ab".repeat(32)),
            format!("sha256:{}/..", "ab".repeat(31)),
        ] {
            assert!(Digest::new(&bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn references_parse_versions_aliases_and_latest() {
        let r: ModelRef = "fmnist-cnn@3".parse().expect("valid");
        assert_eq!(r.selector, Selector::Version(3));
        let r: ModelRef = "fmnist-cnn@production".parse().expect("valid");
        assert_eq!(r.selector, Selector::Alias(Name::new("production").expect("valid")));
        let r: ModelRef = "fmnist-cnn".parse().expect("valid");
        assert_eq!(r.selector, Selector::Latest);
        assert!("../x@1".parse::<ModelRef>().is_err());
        assert!("m@".parse::<ModelRef>().is_err());
        assert!("m@99999999999".parse::<ModelRef>().is_err());
    }
}
