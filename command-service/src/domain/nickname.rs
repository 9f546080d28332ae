use std::fmt;

/// An optional handle: up to 50 letters, digits, '.', '_' or '-'. Empty means none.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Nickname(String);

const MAX_CHARS: usize = 50;

impl Nickname {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.chars().count() > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        if !trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err("may hold only letters, digits, '.', '_' and '-'".to_owned());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Nickname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nicknames_may_be_empty_or_a_handle() {
        assert_eq!(Nickname::parse("").unwrap().as_str(), "");
        assert_eq!(
            Nickname::parse(" ada_l-1.0 ").unwrap().as_str(),
            "ada_l-1.0"
        );
    }

    #[test]
    fn spaces_symbols_and_long_nicknames_are_refused() {
        assert!(Nickname::parse("ada lovelace").is_err());
        assert!(Nickname::parse("ada@home").is_err());
        assert!(Nickname::parse(&"a".repeat(51)).is_err());
    }

    proptest! {
        #[test]
        fn accepted_nicknames_hold_only_allowed_characters(text in "\\PC{0,60}") {
            if let Ok(nickname) = Nickname::parse(&text) {
                prop_assert!(nickname.as_str().chars().all(|c| c.is_alphanumeric() || ".-_".contains(c)));
                prop_assert!(nickname.as_str().chars().count() <= MAX_CHARS);
            }
        }
    }
}
