//! ISO 3166-1 alpha-2 country codes, checked against the `celes` table.

use std::fmt;

/// An upper-case ISO 3166-1 alpha-2 code that names a real country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts exactly two upper-case letters that are an assigned ISO 3166-1 code.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let bytes = text.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err("must be an ISO 3166-1 alpha-2 code of two upper-case letters");
        }
        celes::Country::from_alpha2(text).map_err(|_| "is not an ISO 3166-1 country code")?;
        Ok(Self([bytes[0], bytes[1]]))
    }

    pub fn as_str(&self) -> &str {
        // Built only from two ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn assigned_codes_are_accepted() {
        for code in ["GB", "US", "DE", "JP", "BR"] {
            assert_eq!(CountryCode::parse(code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn unassigned_lower_case_and_long_codes_are_refused() {
        for code in ["XX", "ZZ", "gb", "Gb", "GBR", "G", "", "826"] {
            assert!(CountryCode::parse(code).is_err(), "{code} was accepted");
        }
    }

    proptest! {
        #[test]
        fn accepted_codes_round_trip(text in "\\PC{0,4}") {
            if let Ok(code) = CountryCode::parse(&text) {
                prop_assert_eq!(code.as_str(), text.as_str());
            }
        }
    }
}
