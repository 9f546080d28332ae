use std::{fmt, str::FromStr};

use email_address::EmailAddress;

/// A deliverable-looking address: `local@domain.tld`, at most 254 characters. Kept as typed;
/// uniqueness is case-insensitive in the write database, and so are lookups by address in
/// the read model.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

const MAX_CHARS: usize = 254;
const INVALID: &str = "must be a valid address";

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if trimmed.chars().count() > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        let address = EmailAddress::from_str(trimmed).map_err(|_| INVALID.to_owned())?;
        // The parser accepts forms no mailbox uses in practice here: display names, quoted
        // local parts, IP-literal and dotless domains.
        let domain = address.domain();
        let plain = address.email() == trimmed
            && address.display_part().is_empty()
            && !address.local_part().starts_with('"')
            && domain.contains('.')
            && !domain.starts_with('[')
            && !domain.ends_with('.');
        if !plain {
            return Err(INVALID.to_owned());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_addresses_are_accepted_and_trimmed() {
        assert_eq!(
            Email::parse(" Ada@Example.com ").unwrap().as_str(),
            "Ada@Example.com"
        );
        assert!(Email::parse("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_short_reason() {
        for text in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "Ada <ada@example.com>",
            "\"a b\"@example.com",
            "ada@[127.0.0.1]",
            "ada @example.com",
        ] {
            let error = Email::parse(text).unwrap_err();
            assert!(
                error == INVALID || error == "must not be empty",
                "{text}: {error}"
            );
        }
    }

    proptest! {
        #[test]
        fn accepted_addresses_have_one_at_and_a_dotted_domain(text in "[a-z.@]{0,20}") {
            if let Ok(email) = Email::parse(&text) {
                let (_, domain) = email.as_str().rsplit_once('@').unwrap();
                prop_assert!(domain.contains('.'));
            }
        }
    }
}
