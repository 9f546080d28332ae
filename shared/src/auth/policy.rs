//! The scope each method needs.

/// A scope a token may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "users.read",
            Self::Write => "users.write",
        }
    }
}

/// What a call to `path` needs: nothing (health), any valid token (reflection, and any
/// method not listed, which is refused by default), or a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    AnyToken,
    Scope(Scope),
}

/// The methods of `user.v1.UserService` that read.
const READS: &[&str] = &["GetUser", "ListUsers", "BatchGetUsers", "GetUserByEmail"];
const WRITES: &[&str] = &["CreateUser", "UpdateUser", "DeleteUser"];

pub fn required_scope(path: &str) -> Needs {
    if path.starts_with("/grpc.health.v1.Health/") {
        return Needs::Nothing;
    }
    if let Some(method) = path.strip_prefix("/user.v1.UserService/") {
        if READS.contains(&method) {
            return Needs::Scope(Scope::Read);
        }
        if WRITES.contains(&method) {
            return Needs::Scope(Scope::Write);
        }
    }
    Needs::AnyToken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_health_and_the_rest() {
        assert_eq!(
            required_scope("/user.v1.UserService/GetUser"),
            Needs::Scope(Scope::Read)
        );
        assert_eq!(
            required_scope("/user.v1.UserService/DeleteUser"),
            Needs::Scope(Scope::Write)
        );
        assert_eq!(
            required_scope("/grpc.health.v1.Health/Check"),
            Needs::Nothing
        );
        assert_eq!(
            required_scope("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Needs::AnyToken
        );
        assert_eq!(required_scope("/user.v1.UserService/Nope"), Needs::AnyToken);
    }
}
