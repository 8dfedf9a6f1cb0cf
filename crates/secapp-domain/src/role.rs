//! What an application may do: [`Role`]s, and the set of them an application
//! holds, [`Roles`].
//!
//! - `publish`: announce a level (`POST /secapp/update`).
//! - `consume`: learn the level (polls and streams), as itself only.
//! - `viewer`: read the reports (who holds the level, the history), for
//!   dashboards; changes nothing.
//! - `admin`: manage applications and tokens, and read everything a viewer can.

use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// May publish a level.
    Publish,
    /// May poll and stream the level.
    Consume,
    /// May read the consumer report and the history.
    Viewer,
    /// May manage applications and tokens, and read the reports.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Self; 4] = [Self::Publish, Self::Consume, Self::Viewer, Self::Admin];

    /// The name used on the wire, in the CLI and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Consume => "consume",
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }

    /// Parses a role name (exact, lower case).
    ///
    /// # Errors
    /// [`RoleError`] naming the unknown role and the known ones.
    pub fn parse(name: &str) -> Result<Self, RoleError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| RoleError(name.to_owned()))
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: the roles are publish, consume, viewer and admin")]
pub struct RoleError(pub String);

/// A set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Roles(u8);

impl Roles {
    /// No role at all.
    pub const NONE: Self = Self(0);

    /// The set holding exactly `roles`.
    #[must_use]
    pub fn of(roles: &[Role]) -> Self {
        roles.iter().fold(Self::NONE, |set, role| set.with(*role))
    }

    /// This set plus `role`.
    #[must_use]
    pub const fn with(self, role: Role) -> Self {
        Self(self.0 | role.bit())
    }

    /// Whether `role` is in the set.
    #[must_use]
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether any of `roles` is in the set.
    #[must_use]
    pub fn any_of(self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.contains(*role))
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in the set, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }

    /// Parses role names; repeats are harmless.
    ///
    /// # Errors
    /// [`RoleError`] for the first name that is not a role.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, RoleError> {
        names
            .into_iter()
            .try_fold(Self::NONE, |set, name| Ok(set.with(Role::parse(name)?)))
    }

    /// The stored form: names joined by commas (`publish,consume`).
    #[must_use]
    pub fn to_stored(self) -> String {
        self.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }

    /// Reads the stored form.
    ///
    /// # Errors
    /// [`RoleError`] when a name is not a role.
    pub fn from_stored(text: &str) -> Result<Self, RoleError> {
        Self::parse(text.split(',').filter(|name| !name.is_empty()))
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_form() {
        for bits in 0..16u8 {
            let roles = Roles(bits);
            assert_eq!(Roles::from_stored(&roles.to_stored()).unwrap(), roles);
        }
        assert_eq!(Roles::NONE.to_stored(), "");
        assert_eq!(
            Roles::of(&[Role::Admin, Role::Publish]).to_stored(),
            "publish,admin"
        );
    }

    #[test]
    fn membership_is_per_role() {
        let roles = Roles::of(&[Role::Consume]);
        assert!(roles.contains(Role::Consume));
        assert!(!roles.contains(Role::Publish));
        assert!(roles.any_of(&[Role::Admin, Role::Consume]));
        assert!(!roles.any_of(&[Role::Admin, Role::Viewer]));
        assert!(Roles::NONE.is_empty());
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let err = Roles::parse(["consume", "root"]).unwrap_err();
        assert_eq!(err, RoleError("root".into()));
        assert!(
            err.to_string()
                .contains("publish, consume, viewer and admin")
        );
        assert!(Role::parse("Admin").is_err());
        assert_eq!(
            Roles::parse(["consume", "consume"]).unwrap(),
            Roles::of(&[Role::Consume])
        );
    }
}
