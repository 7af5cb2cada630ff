//! The mapping rules of the old model onto the new one, as pure functions:
//! grant `{actions}` → level, the agent clamp, tree paths, agent naming.
//!
//! Everything here is plain data in, plain data out, so `cargo test -p
//! multiplayer-etl` checks the rules on the host target without a database.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A `tree_access` level of the new model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 1: read.
    Read = 1,
    /// 2: read and write.
    Write = 2,
    /// 3: owner (write, and grant to others).
    Owner = 3,
}

impl Level {
    /// The level's number in `core.tree_access.access`.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The level numbered `n`, if there is one.
    pub fn from_i64(n: i64) -> Option<Level> {
        match n {
            1 => Some(Level::Read),
            2 => Some(Level::Write),
            3 => Some(Level::Owner),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Owner => "owner",
        })
    }
}

/// The old grant actions that write.
const WRITE_ACTIONS: [&str; 3] = ["create", "update", "delete"];

/// Maps an old `tree_grant` (its `actions` and `with_grant_option`) to one level.
///
/// Intentionally **lossy and over-permissive** (seed 001, plan §4.3): the old
/// four actions have no lossless image in three levels, so the mapping
/// rounds up, never down:
///
/// | old grant | new level |
/// |---|---|
/// | `with_grant_option` (delegation), whatever the actions | owner |
/// | any of `create`, `update`, `delete` | write (which also reads, even without `read`) |
/// | `{read}`, or (defensively) no action at all | read |
///
/// So `{delete}` alone and `{read,create}` both widen to full write.
pub fn map_actions<S: AsRef<str>>(actions: &[S], with_grant_option: bool) -> Level {
    if with_grant_option {
        Level::Owner
    } else if actions.iter().any(|a| WRITE_ACTIONS.contains(&a.as_ref())) {
        Level::Write
    } else {
        Level::Read
    }
}

/// What to do when one owner would get two agents of the same name (from two engines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameClash {
    /// `suffix-slug`: every clashing name takes its engine's slug, `claude-<slug>` ([`agent_names`]).
    SuffixSlug,
    /// `refuse`: the engine's unit fails, naming the clash, so the team renames by hand.
    Refuse,
}

/// The mapping choices the ETL applies, reviewable by the team: the access rules
/// (which old grant actions write, what `with_grant_option` means, which org roles
/// administer a space, whether members get a home, who owns the agents and what their
/// names become) and the two copy choices the seed does not state either (whether
/// emails count as verified, whether the memories' `created_by` is kept).
///
/// The defaults are the seed's plan (§4.3) as this plugin reads it; where the seed does
/// not state a rule, the default is this plugin's choice (docs/plugins-rust.md lists
/// them, "choices this plugin makes that the seed does not"), and an operator who wants
/// another one grants a file (`[files] dir` in `migrun.toml`) and names it in config key
/// `access_rules`. The file holds `key = value` lines (`#` starts a comment):
///
/// ```text
/// write_actions = create, update, delete   # any of these widens a grant to write
/// with_grant_option = owner                # `owner`, or `by-actions` (the actions decide)
/// admin_roles = owner, admin               # org roles that become space admins with owner@root
/// member_homes = owner                     # `owner`: owner@home.<id> for every member and agent; `none`
/// agent_owner = owner-or-first-member      # who owns service users' agents; or `org-owner` only
/// agent_name_clash = suffix-slug           # `suffix-slug` (claude-<slug>) or `refuse`
/// email_verified = true                    # auth.users.email_verified for every migrated identity
/// memory_created_by = drop                 # `drop`, or `keep` (a created_by column in me_<slug>.memory)
/// ```
///
/// A key left out keeps its default; an unknown key or value is an error naming the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRules {
    /// Old actions any of which maps a grant to write.
    pub write_actions: BTreeSet<String>,
    /// Whether `with_grant_option` makes the grant owner (else the actions decide).
    pub grant_option_owns: bool,
    /// Org roles whose members become the space's admins (`owner@root`).
    pub admin_roles: BTreeSet<String>,
    /// Whether every member owns a home (`owner@home.<id>`, an agent's under its owner's).
    pub member_homes: bool,
    /// Whether an org without a migrated owner has its first migrated member own the agents
    /// (else its service users are dropped with a warning).
    pub agent_owner_falls_back: bool,
    /// Agent names one owner would get twice.
    pub agent_name_clash: NameClash,
    /// `auth.users.email_verified` of every migrated identity.
    pub email_verified: bool,
    /// Whether the old memories' `created_by` is copied (into a `created_by uuid` column).
    pub keep_memory_created_by: bool,
}

impl Default for AccessRules {
    fn default() -> Self {
        AccessRules {
            write_actions: WRITE_ACTIONS.iter().map(|a| a.to_string()).collect(),
            grant_option_owns: true,
            admin_roles: ["owner", "admin"].iter().map(|r| r.to_string()).collect(),
            member_homes: true,
            agent_owner_falls_back: true,
            agent_name_clash: NameClash::SuffixSlug,
            email_verified: true,
            keep_memory_created_by: false,
        }
    }
}

/// The keys of a rules file.
const KEYS: &str = "write_actions, with_grant_option, admin_roles, member_homes, agent_owner, \
                    agent_name_clash, email_verified, memory_created_by";

impl AccessRules {
    /// The rules of a reviewed file's text (see the type's docs), defaults for keys left out.
    pub fn parse(text: &str) -> Result<AccessRules, String> {
        let mut rules = AccessRules::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "line {}: expected `key = value`, got {line:?}",
                    number + 1
                ));
            };
            let list = || -> BTreeSet<String> {
                value
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect()
            };
            let key = key.trim();
            // One of two words, `yes` for the first.
            let either = |yes: &str, no: &str| -> Result<bool, String> {
                match value.trim() {
                    v if v == yes => Ok(true),
                    v if v == no => Ok(false),
                    other => Err(format!(
                        "line {}: {key} is `{yes}` or `{no}`, got {other:?}",
                        number + 1
                    )),
                }
            };
            match key {
                "write_actions" => {
                    let actions = list();
                    if let Some(unknown) = actions
                        .iter()
                        .find(|a| !["read", "create", "update", "delete"].contains(&a.as_str()))
                    {
                        return Err(format!(
                            "line {}: `{unknown}` is not an old grant action (read, create, update, delete)",
                            number + 1
                        ));
                    }
                    rules.write_actions = actions;
                }
                "with_grant_option" => rules.grant_option_owns = either("owner", "by-actions")?,
                "admin_roles" => rules.admin_roles = list(),
                "member_homes" => rules.member_homes = either("owner", "none")?,
                "agent_owner" => {
                    rules.agent_owner_falls_back = either("owner-or-first-member", "org-owner")?
                }
                "agent_name_clash" => {
                    rules.agent_name_clash = if either("suffix-slug", "refuse")? {
                        NameClash::SuffixSlug
                    } else {
                        NameClash::Refuse
                    }
                }
                "email_verified" => rules.email_verified = either("true", "false")?,
                "memory_created_by" => rules.keep_memory_created_by = either("keep", "drop")?,
                other => {
                    return Err(format!(
                        "line {}: unknown key `{other}` ({KEYS})",
                        number + 1
                    ));
                }
            }
        }
        Ok(rules)
    }

    /// The level of an old grant under these rules (see [`map_actions`] for the defaults).
    pub fn level<S: AsRef<str>>(&self, actions: &[S], with_grant_option: bool) -> Level {
        if with_grant_option && self.grant_option_owns {
            Level::Owner
        } else if actions
            .iter()
            .any(|a| self.write_actions.contains(a.as_ref()))
        {
            Level::Write
        } else {
            Level::Read
        }
    }

    /// Whether members of this org role administer the space.
    pub fn is_admin(&self, role: &str) -> bool {
        self.admin_roles.contains(role)
    }

    /// Who owns the agents minted from an org's service users under these rules: its
    /// first migrated owner, else (`agent_owner = owner-or-first-member`) its first
    /// migrated member ([`choose_owner`]).
    pub fn agent_owner<'m>(
        &self,
        members: &'m [Member],
        migrated: impl Fn(&str) -> bool,
    ) -> Option<&'m str> {
        if self.agent_owner_falls_back {
            choose_owner(members, migrated)
        } else {
            members
                .iter()
                .find(|m| m.role == "owner" && migrated(&m.identity_id))
                .map(|m| m.identity_id.as_str())
        }
    }

    /// One line saying what the rules are, for the log.
    pub fn describe(&self) -> String {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        format!(
            "write_actions = {}; with_grant_option = {}; admin_roles = {}; member_homes = {}; \
             agent_owner = {}; agent_name_clash = {}; email_verified = {}; memory_created_by = {}",
            join(&self.write_actions),
            if self.grant_option_owns {
                "owner"
            } else {
                "by-actions"
            },
            join(&self.admin_roles),
            if self.member_homes { "owner" } else { "none" },
            if self.agent_owner_falls_back {
                "owner-or-first-member"
            } else {
                "org-owner"
            },
            match self.agent_name_clash {
                NameClash::SuffixSlug => "suffix-slug",
                NameClash::Refuse => "refuse",
            },
            self.email_verified,
            if self.keep_memory_created_by {
                "keep"
            } else {
                "drop"
            },
        )
    }
}

/// Org owners and admins were the engine's superusers: they become space admins with `owner@root`.
pub fn org_role_is_admin(role: &str) -> bool {
    role == "owner" || role == "admin"
}

/// The root path: the empty ltree, above every other path.
pub const ROOT: &str = "";

/// Whether `ancestor` is `path` or one of its ancestors (ltree's `ancestor @> path`):
/// label-wise prefix, the root covering everything.
pub fn path_covers(ancestor: &str, path: &str) -> bool {
    ancestor.is_empty()
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'.'))
}

/// A uuid as one ltree label: its hex digits.
fn label(id: &str) -> String {
    id.replace('-', "")
}

/// A user's home directory, which it owns in every space it joins: `home.<user id hex>`.
pub fn home_path(user_id: &str) -> String {
    format!("home.{}", label(user_id))
}

/// An agent's home, nested in its owner's so the owner's `owner@home.<owner>`
/// covers it and the clamp keeps it: `home.<owner id hex>.<agent id hex>`.
pub fn agent_home_path(owner_id: &str, agent_id: &str) -> String {
    format!("home.{}.{}", label(owner_id), label(agent_id))
}

/// Grants of one principal: the highest level per path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantSet(BTreeMap<String, Level>);

impl GrantSet {
    /// No grants.
    pub fn new() -> GrantSet {
        GrantSet::default()
    }

    /// Adds `level@path`, keeping the higher level when the path is already granted.
    pub fn add(&mut self, path: &str, level: Level) {
        let slot = self.0.entry(path.to_owned()).or_insert(level);
        if level > *slot {
            *slot = level;
        }
    }

    /// Adds every grant of `other`.
    pub fn extend(&mut self, other: &GrantSet) {
        for (path, level) in other.iter() {
            self.add(path, level);
        }
    }

    /// The level granted exactly at `path`.
    pub fn get(&self, path: &str) -> Option<Level> {
        self.0.get(path).copied()
    }

    /// Whether some grant at `path` or above it is at least `level`
    /// (what the access checks of the new model ask).
    pub fn reaches(&self, path: &str, level: Level) -> bool {
        self.0
            .iter()
            .any(|(p, l)| *l >= level && path_covers(p, path))
    }

    /// The grants, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Level)> {
        self.0.iter().map(|(p, l)| (p.as_str(), *l))
    }

    /// How many paths are granted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<(S, Level)> for GrantSet {
    fn from_iter<I: IntoIterator<Item = (S, Level)>>(iter: I) -> Self {
        let mut set = GrantSet::new();
        for (path, level) in iter {
            set.add(path.as_ref(), level);
        }
        set
    }
}

impl fmt::Display for GrantSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .iter()
            .map(|(p, l)| format!("{l}@{}", if p.is_empty() { "/" } else { p }))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// An agent's grants clamped under its owner's: the new model's
/// `agent_tree_access`, which this crate also installs in the target.
///
/// For every agent grant and owner grant on one lineage, the agent gets the
/// lower of the two levels at the deeper of the two paths; the highest level
/// per path wins. So an agent never exceeds its owner; granted more than the
/// owner holds it clamps *down* rather than vanishing (owner `read@foo`,
/// agent `write@foo.bar` → `read@foo.bar`); where the owner holds nothing,
/// the agent gets nothing. Under an owner holding `owner@root` — every org
/// owner, a space admin — every agent grant survives unchanged.
pub fn clamp(agent: &GrantSet, owner: &GrantSet) -> GrantSet {
    let mut out = GrantSet::new();
    for (ap, al) in agent.iter() {
        for (op, ol) in owner.iter() {
            if path_covers(op, ap) {
                out.add(ap, al.min(ol));
            }
            if path_covers(ap, op) {
                out.add(op, al.min(ol));
            }
        }
    }
    out
}

/// A principal name the new model accepts: `/` separates an agent from its
/// owner in displayed names, so it becomes `-`.
pub fn principal_name(name: &str) -> String {
    name.replace('/', "-")
}

/// The agent names for one engine's service users (`own`, in order), given the
/// names of the service users the same owner gets from its *other* engines
/// (`elsewhere`).
///
/// Agent names are unique per owner, case-insensitively, and one owner can
/// own several engines each with, say, a `claude`. Whoever ran first must
/// not win (a subset run then a full run must equal one full run), so every
/// clashing name is suffixed with its engine's slug — `claude-<slug>` — on
/// every engine it clashes on, and the others keep theirs.
pub fn agent_names<S: AsRef<str>>(own: &[S], elsewhere: &[S], slug: &str) -> Vec<String> {
    let taken: Vec<String> = elsewhere
        .iter()
        .map(|n| principal_name(n.as_ref()).to_lowercase())
        .collect();
    own.iter()
        .map(|n| {
            let name = principal_name(n.as_ref());
            if taken.contains(&name.to_lowercase()) {
                format!("{name}-{slug}")
            } else {
                name
            }
        })
        .collect()
}

/// An org member, for [`choose_owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The identity.
    pub identity_id: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// Who owns the agents minted from an engine's service users: the org's first
/// owner whose identity migrated, else its first migrated member (members in
/// the order given: by membership date).
pub fn choose_owner(members: &[Member], migrated: impl Fn(&str) -> bool) -> Option<&str> {
    members
        .iter()
        .find(|m| m.role == "owner" && migrated(&m.identity_id))
        .or_else(|| members.iter().find(|m| migrated(&m.identity_id)))
        .map(|m| m.identity_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(grants: &[(&str, Level)]) -> GrantSet {
        grants.iter().map(|(p, l)| (*p, *l)).collect()
    }

    #[test]
    fn actions_map_to_levels_over_permissively() {
        assert_eq!(map_actions(&["read"], false), Level::Read);
        assert_eq!(
            map_actions::<&str>(&[], false),
            Level::Read,
            "defensive: no action reads"
        );
        assert_eq!(map_actions(&["create"], false), Level::Write);
        assert_eq!(map_actions(&["update"], false), Level::Write);
        assert_eq!(
            map_actions(&["delete"], false),
            Level::Write,
            "delete-only widens to write"
        );
        assert_eq!(map_actions(&["read", "create"], false), Level::Write);
        assert_eq!(
            map_actions(&["read", "create", "update", "delete"], false),
            Level::Write
        );
        assert_eq!(
            map_actions(&["read"], true),
            Level::Owner,
            "grant option is delegation"
        );
        assert_eq!(map_actions::<&str>(&[], true), Level::Owner);
        assert_eq!(map_actions(&["delete".to_owned()], true), Level::Owner);
    }

    #[test]
    fn org_roles() {
        assert!(org_role_is_admin("owner"));
        assert!(org_role_is_admin("admin"));
        assert!(!org_role_is_admin("member"));
        assert!(!org_role_is_admin("Owner"));
    }

    #[test]
    fn paths_cover_label_wise() {
        assert!(path_covers("", "a.b"));
        assert!(path_covers("", ""));
        assert!(path_covers("a", "a"));
        assert!(path_covers("a", "a.b"));
        assert!(path_covers("a.b", "a.b.c"));
        assert!(!path_covers("a", "ab"), "a label prefix is not an ancestor");
        assert!(!path_covers("a.b", "a"));
        assert!(!path_covers("a", ""));
    }

    #[test]
    fn homes() {
        let user = "018e2cdf-1871-7a44-88b7-8fb30877ab2c";
        let agent = "018e2ce6-baad-78ff-89b4-0d60cd624082";
        assert_eq!(home_path(user), "home.018e2cdf18717a4488b78fb30877ab2c");
        assert_eq!(
            agent_home_path(user, agent),
            "home.018e2cdf18717a4488b78fb30877ab2c.018e2ce6baad78ff89b40d60cd624082"
        );
        assert!(path_covers(&home_path(user), &agent_home_path(user, agent)));
    }

    #[test]
    fn grant_sets_keep_the_highest_level() {
        let mut g = set(&[("a", Level::Read)]);
        g.add("a", Level::Owner);
        g.add("a", Level::Write);
        assert_eq!(g.get("a"), Some(Level::Owner));
        assert!(g.reaches("a.b.c", Level::Owner));
        assert!(!g.reaches("b", Level::Read));
        assert_eq!(g.to_string(), "owner@a");
        assert_eq!(set(&[("", Level::Read)]).to_string(), "read@/");
    }

    #[test]
    fn clamp_under_owner_at_root_keeps_every_grant() {
        let owner = set(&[("", Level::Owner), ("home.o", Level::Owner)]);
        let agent = set(&[
            ("pb", Level::Read),
            ("team.shared", Level::Write),
            ("team.gamma", Level::Owner),
            ("home.o.a", Level::Owner),
        ]);
        // Arm two adds the owner's narrower paths under agent grants at or above them;
        // none of the agent's paths is above the owner's here but the root.
        assert_eq!(clamp(&agent, &owner), agent);
    }

    #[test]
    fn clamp_lowers_to_the_owner_and_drops_what_the_owner_lacks() {
        let owner = set(&[("foo", Level::Read), ("home.o", Level::Owner)]);
        let agent = set(&[
            ("foo.bar", Level::Write),   // owner read@foo above: clamped down to read
            ("elsewhere", Level::Owner), // owner holds nothing there: dropped
            ("home.o.a", Level::Owner),  // under the owner's home: kept
        ]);
        assert_eq!(
            clamp(&agent, &owner),
            set(&[("foo.bar", Level::Read), ("home.o.a", Level::Owner)])
        );
    }

    #[test]
    fn clamp_of_a_wide_agent_grant_lands_on_the_owners_narrower_paths() {
        let owner = set(&[("projects.alpha", Level::Write), ("docs", Level::Read)]);
        let agent = set(&[("", Level::Owner)]);
        assert_eq!(
            clamp(&agent, &owner),
            set(&[("projects.alpha", Level::Write), ("docs", Level::Read)])
        );
        assert!(
            clamp(&agent, &GrantSet::new()).is_empty(),
            "an owner with nothing clamps to nothing"
        );
    }

    #[test]
    fn clamp_takes_the_highest_surviving_level_per_path() {
        let owner = set(&[("", Level::Read), ("a", Level::Owner)]);
        let agent = set(&[("a.b", Level::Write)]);
        // read via the root, write via a: the higher wins.
        assert_eq!(clamp(&agent, &owner), set(&[("a.b", Level::Write)]));
    }

    #[test]
    fn agent_names_suffix_every_clash() {
        assert_eq!(
            agent_names(&["claude", "codex"], &["Claude"], "abc"),
            ["claude-abc", "codex"]
        );
        assert_eq!(agent_names::<&str>(&["claude"], &[], "abc"), ["claude"]);
        assert_eq!(
            agent_names(&["a/b"], &["x"], "s"),
            ["a-b"],
            "no slash in names"
        );
    }

    #[test]
    fn owner_is_the_first_migrated_owner_else_the_first_migrated_member() {
        let m = |id: &str, role: &str| Member {
            identity_id: id.into(),
            role: role.into(),
        };
        let members = [m("a", "member"), m("b", "owner"), m("c", "owner")];
        assert_eq!(choose_owner(&members, |_| true), Some("b"));
        assert_eq!(choose_owner(&members, |id| id != "b"), Some("c"));
        assert_eq!(choose_owner(&members, |id| id == "a"), Some("a"));
        assert_eq!(choose_owner(&members, |_| false), None);
    }

    #[test]
    fn access_rules_default_to_the_built_in_choices_and_parse_a_reviewed_file() {
        let defaults = AccessRules::default();
        for (actions, wgo) in [
            (vec!["read"], false),
            (vec!["delete"], false),
            (vec!["read"], true),
        ] {
            assert_eq!(defaults.level(&actions, wgo), map_actions(&actions, wgo));
        }
        assert!(
            defaults.is_admin("admin")
                && defaults.is_admin("owner")
                && !defaults.is_admin("member")
        );

        let reviewed = AccessRules::parse(
            "# reviewed by the team\nwrite_actions = create, update   # delete alone reads\n\
             with_grant_option = by-actions\nadmin_roles = owner\n",
        )
        .unwrap();
        assert_eq!(reviewed.level(&["delete"], false), Level::Read);
        assert_eq!(
            reviewed.level(&["read"], true),
            Level::Read,
            "the actions decide"
        );
        assert_eq!(reviewed.level(&["update"], true), Level::Write);
        assert!(!reviewed.is_admin("admin"));
        assert_eq!(
            AccessRules::parse("admin_roles = owner")
                .unwrap()
                .write_actions,
            defaults.write_actions,
            "a key left out keeps its default"
        );
        assert!(
            AccessRules::parse("colour = blue")
                .unwrap_err()
                .contains("line 1: unknown key `colour`")
        );
        assert!(
            AccessRules::parse("\nwrite_actions = erase")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(AccessRules::parse("with_grant_option = maybe").is_err());
        let open = AccessRules::parse(
            "member_homes = none\nagent_owner = org-owner\nagent_name_clash = refuse\n\
             email_verified = false\nmemory_created_by = keep\n",
        )
        .unwrap();
        assert!(!open.member_homes && !open.agent_owner_falls_back);
        assert_eq!(open.agent_name_clash, NameClash::Refuse);
        assert!(!open.email_verified && open.keep_memory_created_by);
        assert!(
            defaults.member_homes
                && defaults.agent_owner_falls_back
                && defaults.agent_name_clash == NameClash::SuffixSlug
                && defaults.email_verified
                && !defaults.keep_memory_created_by,
            "today's choices by default"
        );
        assert!(
            AccessRules::parse("email_verified = maybe")
                .unwrap_err()
                .contains("email_verified is `true` or `false`")
        );
        let m = |id: &str, role: &str| Member {
            identity_id: id.into(),
            role: role.into(),
        };
        let members = [m("a", "member"), m("b", "admin")];
        assert_eq!(defaults.agent_owner(&members, |_| true), Some("a"));
        assert_eq!(open.agent_owner(&members, |_| true), None);
        assert!(AccessRules::parse("just words").is_err());
    }
}
