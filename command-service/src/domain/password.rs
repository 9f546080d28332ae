use std::fmt;

/// A password as typed: 8 to 128 characters. It exists only until it is hashed and never
/// prints.
#[derive(Clone)]
pub struct Password(String);

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

impl Password {
    pub fn parse(text: &str) -> Result<Self, String> {
        let count = text.chars().count();
        if count < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters"));
        }
        if count > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bounded_in_length() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
