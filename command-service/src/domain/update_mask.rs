use std::fmt;

/// A field UpdateUser may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpdatableField {
    FirstName,
    LastName,
    Nickname,
    Email,
    Country,
    Password,
}

impl UpdatableField {
    pub const ALL: [Self; 6] = [
        Self::FirstName,
        Self::LastName,
        Self::Nickname,
        Self::Email,
        Self::Country,
        Self::Password,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::Nickname => "nickname",
            Self::Email => "email",
            Self::Country => "country",
            Self::Password => "password",
        }
    }
}

impl fmt::Display for UpdatableField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fields an update names: at least one, each once, each updatable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateMask(Vec<UpdatableField>);

const OUTPUT_ONLY: [&str; 4] = ["id", "created_at", "updated_at", "version"];

impl UpdateMask {
    pub fn parse<S: AsRef<str>>(paths: &[S]) -> Result<Self, String> {
        if paths.is_empty() {
            return Err("must name at least one field".to_owned());
        }
        let mut fields = Vec::with_capacity(paths.len());
        for path in paths {
            let path = path.as_ref();
            // Clients built on AIP-161 sometimes qualify paths with the resource name.
            let name = path.strip_prefix("user.").unwrap_or(path);
            let field = UpdatableField::ALL
                .into_iter()
                .find(|field| field.name() == name);
            match field {
                Some(field) if fields.contains(&field) => {
                    return Err(format!("names `{path}` twice"));
                }
                Some(field) => fields.push(field),
                None if OUTPUT_ONLY.contains(&name) => {
                    return Err(format!("`{path}` cannot be updated"));
                }
                None => {
                    return Err(format!(
                        "`{path}` is not a field of User; updatable: first_name, last_name, nickname, email, country, password"
                    ));
                }
            }
        }
        fields.sort();
        Ok(Self(fields))
    }

    pub fn contains(&self, field: UpdatableField) -> bool {
        self.0.contains(&field)
    }

    pub fn fields(&self) -> &[UpdatableField] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_accepted_in_a_stable_order() {
        let mask = UpdateMask::parse(&["email", "first_name", "user.country"]).unwrap();
        assert_eq!(
            mask.fields(),
            &[
                UpdatableField::FirstName,
                UpdatableField::Email,
                UpdatableField::Country
            ]
        );
    }

    #[test]
    fn empty_unknown_repeated_and_output_only_paths_are_refused() {
        assert_eq!(
            UpdateMask::parse::<&str>(&[]).unwrap_err(),
            "must name at least one field"
        );
        assert!(
            UpdateMask::parse(&["shoe_size"])
                .unwrap_err()
                .contains("not a field")
        );
        assert!(
            UpdateMask::parse(&["email", "email"])
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(
            UpdateMask::parse(&["version"]).unwrap_err(),
            "`version` cannot be updated"
        );
        assert!(UpdateMask::parse(&[""]).is_err());
    }
}
