//! One engine → one space, as a pure function: [`plan_space`] turns what the
//! sources say about an engine into every row its unit writes (memories
//! aside), plus the warnings; [`Access`] computes effective access the way
//! the new model's `core.build_tree_access` does, for the clamp and the checks.

use std::collections::{BTreeMap, BTreeSet};

use crate::mapping::{
    AccessRules, GrantSet, Level, Member, NameClash, ROOT, agent_home_path, agent_names, clamp,
    home_path, principal_name,
};

/// `accounts.engine`, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRow {
    /// Becomes the space id.
    pub id: String,
    /// The org that owns it.
    pub org_id: String,
    /// Reused verbatim as the space slug and in `me_<slug>`.
    pub slug: String,
    /// The space name.
    pub name: String,
    /// The text-search language.
    pub language: String,
    /// `created_at`, canonical text.
    pub created_at: String,
}

/// `accounts.org_member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMemberRow {
    /// The member.
    pub identity_id: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// A pending `accounts.invitation` of the engine's org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    /// Who is invited.
    pub email: String,
    /// The org role offered.
    pub role: String,
    /// The inviting identity.
    pub invited_by: String,
    /// `expires_at`, canonical text.
    pub expires_at: String,
    /// `created_at`, canonical text.
    pub created_at: String,
}

/// `me_<slug>."user"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineUserRow {
    /// The engine user's id (kept for the groups and agents it becomes).
    pub id: String,
    /// Its name (the email for identities, the role or service name otherwise).
    pub name: String,
    /// The identity it logs in as; none for roles and service users.
    pub identity_id: Option<String>,
    /// False for RBAC roles.
    pub can_login: bool,
    /// Engine superuser.
    pub superuser: bool,
    /// `created_at`, canonical text.
    pub created_at: String,
}

/// `me_<slug>.tree_owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeOwnerRow {
    /// The owned subtree.
    pub tree_path: String,
    /// Its owner.
    pub user_id: String,
}

/// `me_<slug>.tree_grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeGrantRow {
    /// The subtree.
    pub tree_path: String,
    /// The grantee.
    pub user_id: String,
    /// A subset of `read`, `create`, `update`, `delete`.
    pub actions: Vec<String>,
    /// Whether the grantee may grant it on.
    pub with_grant_option: bool,
}

/// `me_<slug>.role_membership`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMembershipRow {
    /// The role (a login-less user).
    pub role_id: String,
    /// The member (a user or another role).
    pub member_id: String,
    /// Whether the member administers the role.
    pub with_admin_option: bool,
}

/// Everything the plan reads about one engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineInput {
    /// The engine.
    pub engine: Option<EngineRow>,
    /// Its org's members, by membership date.
    pub org_members: Vec<OrgMemberRow>,
    /// Its org's pending invitations.
    pub invitations: Vec<InvitationRow>,
    /// Its users, roles and service users.
    pub users: Vec<EngineUserRow>,
    /// Subtree owners.
    pub owners: Vec<TreeOwnerRow>,
    /// Explicit grants.
    pub grants: Vec<TreeGrantRow>,
    /// Role memberships.
    pub memberships: Vec<RoleMembershipRow>,
    /// Every identity id in `accounts` (all of them migrate in phase A).
    pub identities: BTreeSet<String>,
    /// Service user names the same agent owner gets from its other engines (see [`agent_names`]).
    pub owner_agents_elsewhere: Vec<String>,
    /// The access rules applied (the built-in ones unless the operator granted a file).
    pub rules: AccessRules,
}

/// What a principal is in the new model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `u`: a migrated identity.
    User,
    /// `g`: a group of one space (an old RBAC role).
    Group,
    /// `a`: an agent owned by a user (an old service user).
    Agent,
}

impl Kind {
    /// The `core.principal.kind` letter.
    pub fn letter(self) -> &'static str {
        match self {
            Kind::User => "u",
            Kind::Group => "g",
            Kind::Agent => "a",
        }
    }
}

/// A principal the unit creates (users exist already, from phase A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrincipal {
    /// The old engine user's id, preserved.
    pub id: String,
    /// Group or agent.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The owning user, for agents.
    pub owner_id: Option<String>,
    /// The old user's `created_at`.
    pub created_at: String,
}

/// A `core.group_member` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The group.
    pub group_id: String,
    /// A user or agent.
    pub member_id: String,
    /// `with_admin_option`.
    pub admin: bool,
}

/// A `core.space_invitation` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceInvitation {
    /// Who is invited.
    pub email: String,
    /// Invited as a space admin (org owner/admin role).
    pub admin: bool,
    /// The inviting user.
    pub invited_by: String,
    /// Canonical text.
    pub expires_at: String,
    /// Canonical text.
    pub created_at: String,
}

/// Every row of one space, and what the operator should read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacePlan {
    /// The engine the space comes from.
    pub engine: EngineRow,
    /// Groups (from roles) and agents (from service users), in the old users' order.
    pub principals: Vec<NewPrincipal>,
    /// `core.principal_space`: (principal, admin); users and agents, then groups.
    pub roster: Vec<(String, bool)>,
    /// `core.tree_access`, per principal (agents' direct grants already clamped).
    pub grants: BTreeMap<String, GrantSet>,
    /// `core.group_member`.
    pub group_members: Vec<GroupMember>,
    /// `core.space_invitation`.
    pub invitations: Vec<SpaceInvitation>,
    /// The user who owns the space's agents.
    pub agent_owner: Option<String>,
    /// Every lossy or dropped thing, for the operator.
    pub warnings: Vec<String>,
}

/// Plans one engine's space.
///
/// Rules (seed 001, and where it says nothing the [`AccessRules`] in `input`):
/// every migrated org member joins the space and owns its home (`member_homes`);
/// org owners and admins (`admin_roles`) are space admins with `owner@root`; engine
/// superusers with a migrated identity get `owner@root` too; `tree_owner` →
/// owner; `tree_grant` → [`map_actions`]; the highest level per path wins. RBAC
/// roles (login-less users) become groups of the space, their memberships
/// group members — except role-in-role edges, which the new groups cannot
/// express (dropped with a warning). Service users (login, no identity)
/// become agents owned by the org owner ([`AccessRules::agent_owner`]), join the
/// space with their home under the owner's, named apart from the owner's other agents
/// (`agent_name_clash`), and keep their grants clamped under the
/// owner's effective access ([`clamp`]; the owner holds `owner@root`, so
/// nothing is lost). Engine users whose identity does not exist — dangling
/// identities — are dropped with their grants, with a warning. Pending
/// invitations become the space's, unless their inviter did not migrate.
///
/// Fails when no migrated member would be an admin (the new model requires one).
pub fn plan_space(input: &EngineInput) -> Result<SpacePlan, String> {
    let engine = input
        .engine
        .clone()
        .ok_or_else(|| "no engine given".to_owned())?;
    let migrated = |id: &str| input.identities.contains(id);
    let mut warnings = Vec::new();

    let members: Vec<Member> = input
        .org_members
        .iter()
        .map(|m| Member {
            identity_id: m.identity_id.clone(),
            role: m.role.clone(),
        })
        .collect();
    let agent_owner = input
        .rules
        .agent_owner(&members, migrated)
        .map(str::to_owned);

    // 1. Each old engine user → a user, a group or a new agent (or nothing).
    let service_names: Vec<&str> = input
        .users
        .iter()
        .filter(|u| u.can_login && u.identity_id.is_none())
        .map(|u| u.name.as_str())
        .collect();
    let elsewhere: Vec<&str> = input
        .owner_agents_elsewhere
        .iter()
        .map(String::as_str)
        .collect();
    let names = agent_names(&service_names, &elsewhere, &engine.slug);
    if input.rules.agent_name_clash == NameClash::Refuse && agent_owner.is_some() {
        let clashes: Vec<&str> = service_names
            .iter()
            .zip(&names)
            .filter(|(old, new)| principal_name(old) != **new)
            .map(|(old, _)| *old)
            .collect();
        if !clashes.is_empty() {
            return Err(format!(
                "engine {}: the agent owner would get agent(s) {} twice (from another engine \
                 too), and agent_name_clash = refuse: rename the service users, or set \
                 agent_name_clash = suffix-slug in the access rules",
                engine.slug,
                clashes.join(", ")
            ));
        }
    }
    let mut names = names.into_iter();
    // What each old engine user became: its kind and its new principal id.
    let mut mapped: BTreeMap<&str, (Kind, String)> = BTreeMap::new();
    let mut principals = Vec::new();
    for u in &input.users {
        if !u.can_login {
            principals.push(NewPrincipal {
                id: u.id.clone(),
                kind: Kind::Group,
                name: principal_name(&u.name),
                owner_id: None,
                created_at: u.created_at.clone(),
            });
            mapped.insert(&u.id, (Kind::Group, u.id.clone()));
        } else if let Some(identity) = &u.identity_id {
            if migrated(identity) {
                mapped.insert(&u.id, (Kind::User, identity.clone()));
            } else {
                warnings.push(format!(
                    "engine user {} ({}) references identity {identity}, which does not exist \
                     (a dangling identity): dropped with its grants",
                    u.id, u.name
                ));
            }
        } else {
            let name = names.next().expect("one name per service user");
            match &agent_owner {
                Some(owner) => {
                    if name != principal_name(&u.name) {
                        warnings.push(format!(
                            "service user {} ({}) becomes agent `{name}`: its owner has another \
                             agent of that name from another engine",
                            u.id, u.name
                        ));
                    }
                    principals.push(NewPrincipal {
                        id: u.id.clone(),
                        kind: Kind::Agent,
                        name,
                        owner_id: Some(owner.clone()),
                        created_at: u.created_at.clone(),
                    });
                    mapped.insert(&u.id, (Kind::Agent, u.id.clone()));
                }
                None if !input.rules.agent_owner_falls_back => warnings.push(format!(
                    "service user {} ({}): the org has no migrated owner to own it (agent_owner = \
                     org-owner); dropped with its grants",
                    u.id, u.name
                )),
                None => warnings.push(format!(
                    "service user {} ({}): no migrated org member to own it; dropped with its grants",
                    u.id, u.name
                )),
            }
        }
    }

    // 2. The roster from org membership; admins own the root.
    let mut grants: BTreeMap<String, GrantSet> = BTreeMap::new();
    fn grant(grants: &mut BTreeMap<String, GrantSet>, principal: &str, path: &str, level: Level) {
        grants
            .entry(principal.to_owned())
            .or_default()
            .add(path, level);
    }
    let mut roster: Vec<(String, bool)> = Vec::new();
    for m in &input.org_members {
        if !migrated(&m.identity_id) {
            warnings.push(format!(
                "org member {} does not exist as an identity; skipped",
                m.identity_id
            ));
            continue;
        }
        let admin = input.rules.is_admin(&m.role);
        roster.push((m.identity_id.clone(), admin));
        if input.rules.member_homes {
            grant(
                &mut grants,
                &m.identity_id,
                &home_path(&m.identity_id),
                Level::Owner,
            );
        }
        if admin {
            grant(&mut grants, &m.identity_id, ROOT, Level::Owner);
        }
    }
    if !roster.iter().any(|(_, admin)| *admin) {
        return Err(format!(
            "engine {} (org {}) has no migrated org owner or admin, and a space needs an admin",
            engine.slug, engine.org_id
        ));
    }
    let rostered: BTreeSet<String> = roster.iter().map(|(id, _)| id.clone()).collect();

    // 3. Superusers, tree owners, explicit grants.
    for u in &input.users {
        if let (true, true, Some(identity)) = (u.can_login, u.superuser, &u.identity_id)
            && migrated(identity)
        {
            grant(&mut grants, identity, ROOT, Level::Owner);
        }
    }
    for o in &input.owners {
        if let Some((_, id)) = mapped.get(o.user_id.as_str()) {
            grant(&mut grants, id, &o.tree_path, Level::Owner);
        }
    }
    for g in &input.grants {
        if let Some((_, id)) = mapped.get(g.user_id.as_str()) {
            grant(
                &mut grants,
                id,
                &g.tree_path,
                input.rules.level(&g.actions, g.with_grant_option),
            );
        }
    }
    for u in &input.users {
        if let Some((Kind::User, id)) = mapped.get(u.id.as_str())
            && !rostered.contains(id)
            && grants.contains_key(id)
        {
            warnings.push(format!(
                "engine user {} ({}) is not a member of the org: its grants are kept but take \
                 effect only once it joins the space",
                u.id, u.name
            ));
        }
    }

    // 4. Agents join the space and own their home under the owner's.
    for p in principals.iter().filter(|p| p.kind == Kind::Agent) {
        let owner = p.owner_id.as_deref().expect("agents have an owner");
        roster.push((p.id.clone(), false));
        if input.rules.member_homes {
            grant(
                &mut grants,
                &p.id,
                &agent_home_path(owner, &p.id),
                Level::Owner,
            );
        }
    }
    // Groups are rostered into their space too (never as admins).
    for p in principals.iter().filter(|p| p.kind == Kind::Group) {
        roster.push((p.id.clone(), false));
    }

    // 5. Role memberships → group members; groups do not nest.
    let name_of = |id: &str| {
        input
            .users
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| id.to_owned(), |u| format!("{} ({id})", u.name))
    };
    let mut group_members = Vec::new();
    for rm in &input.memberships {
        let group = match mapped.get(rm.role_id.as_str()) {
            Some((Kind::Group, id)) => id.clone(),
            _ => {
                warnings.push(format!(
                    "role_membership role {} did not map to a group; edge dropped",
                    name_of(&rm.role_id)
                ));
                continue;
            }
        };
        match mapped.get(rm.member_id.as_str()) {
            None => warnings.push(format!(
                "role_membership member {} of role {} did not map; edge dropped",
                name_of(&rm.member_id),
                name_of(&rm.role_id)
            )),
            Some((Kind::Group, _)) => warnings.push(format!(
                "nested role membership: role {} is a member of role {}, which the new groups \
                 cannot express; edge dropped — flatten it by hand",
                name_of(&rm.member_id),
                name_of(&rm.role_id)
            )),
            Some((_, member)) => group_members.push(GroupMember {
                group_id: group,
                member_id: member.clone(),
                admin: rm.with_admin_option,
            }),
        }
    }

    // 6. Agents' direct grants, clamped under their owner's effective access.
    let mut plan = SpacePlan {
        engine,
        principals,
        roster,
        grants,
        group_members,
        invitations: Vec::new(),
        agent_owner,
        warnings,
    };
    let agents: Vec<(String, String)> = plan
        .principals
        .iter()
        .filter(|p| p.kind == Kind::Agent)
        .map(|p| (p.id.clone(), p.owner_id.clone().unwrap_or_default()))
        .collect();
    for (agent, owner) in agents {
        let owner_access = Access::new(&plan).user(&owner);
        let direct = plan.grants.get(&agent).cloned().unwrap_or_default();
        let clamped = clamp(&direct, &owner_access);
        if clamped != direct {
            plan.warnings.push(format!(
                "agent {agent}: grants {direct} clamped under its owner's access to {clamped}"
            ));
        }
        plan.grants.insert(agent, clamped);
    }

    // 7. Pending invitations.
    for inv in &input.invitations {
        if !migrated(&inv.invited_by) {
            plan.warnings.push(format!(
                "invitation for {} was sent by {}, who does not exist as an identity; skipped",
                inv.email, inv.invited_by
            ));
            continue;
        }
        plan.invitations.push(SpaceInvitation {
            email: inv.email.clone(),
            admin: input.rules.is_admin(&inv.role),
            invited_by: inv.invited_by.clone(),
            expires_at: inv.expires_at.clone(),
            created_at: inv.created_at.clone(),
        });
    }
    plan.grants.retain(|_, g| !g.is_empty());
    Ok(plan)
}

/// Effective access in a planned space, as the new model computes it
/// (`core.user_tree_access`, `core.agent_tree_access`).
pub struct Access<'a> {
    plan: &'a SpacePlan,
}

impl<'a> Access<'a> {
    /// Access in `plan`'s space.
    pub fn new(plan: &'a SpacePlan) -> Access<'a> {
        Access { plan }
    }

    fn in_space(&self, id: &str) -> bool {
        self.plan.roster.iter().any(|(p, _)| p == id)
    }

    fn direct(&self, id: &str) -> GrantSet {
        self.plan.grants.get(id).cloned().unwrap_or_default()
    }

    /// Direct grants plus the grants of the member's groups, if the member is in the space.
    fn member(&self, id: &str) -> GrantSet {
        let mut out = GrantSet::new();
        if !self.in_space(id) {
            return out;
        }
        out.extend(&self.direct(id));
        for gm in self
            .plan
            .group_members
            .iter()
            .filter(|gm| gm.member_id == id)
        {
            out.extend(&self.direct(&gm.group_id));
        }
        out
    }

    /// A user's effective access.
    pub fn user(&self, id: &str) -> GrantSet {
        self.member(id)
    }

    /// An agent's effective access: its own, clamped under its owner's.
    pub fn agent(&self, id: &str) -> GrantSet {
        let owner = self
            .plan
            .principals
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.owner_id.clone())
            .unwrap_or_default();
        clamp(&self.member(id), &self.user(&owner))
    }

    /// A principal's effective access, by kind (groups have none of their own).
    pub fn of(&self, id: &str) -> GrantSet {
        match self.plan.principals.iter().find(|p| p.id == id) {
            Some(p) if p.kind == Kind::Agent => self.agent(id),
            Some(_) => GrantSet::new(),
            None => self.user(id),
        }
    }
}

/// One thing the old model let a principal do: reach `path` at `level` or more.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OldRight {
    /// The principal in the new model (the identity, or the agent from the service user).
    pub principal: String,
    /// The subtree.
    pub path: String,
    /// The least level that keeps the old right.
    pub level: Level,
}

/// The rights the old model gave the members of `plan`'s space, derived from
/// the old rows directly (not through the mapping): engine superusers and
/// org owners/admins could do everything; a `tree_owner` owned its subtree; a
/// `tree_grant` needed read for `read`, write for any write action, owner for
/// the grant option; and a role's rights reached its direct members.
/// Engine users outside the space and dangling ones are left out.
pub fn old_rights(input: &EngineInput, plan: &SpacePlan) -> Vec<OldRight> {
    let rostered = |id: &str| plan.roster.iter().any(|(p, _)| p == id);
    let mut principal_of: BTreeMap<&str, String> = BTreeMap::new();
    for u in input.users.iter().filter(|u| u.can_login) {
        let new_id = match &u.identity_id {
            Some(identity) => identity.clone(),
            None => u.id.clone(),
        };
        if rostered(&new_id) {
            principal_of.insert(&u.id, new_id);
        }
    }
    let mut rights = Vec::new();
    let mut add = |principal: &str, path: &str, level: Level| {
        rights.push(OldRight {
            principal: principal.to_owned(),
            path: path.to_owned(),
            level,
        });
    };
    for m in &input.org_members {
        if input.rules.is_admin(&m.role) && rostered(&m.identity_id) {
            add(&m.identity_id, ROOT, Level::Owner);
        }
    }
    // The holders of a right: the user itself, or a role's direct members.
    let holders = |user_id: &str| -> Vec<String> {
        let mut out: Vec<String> = principal_of.get(user_id).cloned().into_iter().collect();
        out.extend(
            input
                .memberships
                .iter()
                .filter(|rm| rm.role_id == user_id)
                .filter_map(|rm| principal_of.get(rm.member_id.as_str()).cloned()),
        );
        out
    };
    for u in input.users.iter().filter(|u| u.can_login && u.superuser) {
        for h in holders(&u.id) {
            add(&h, ROOT, Level::Owner);
        }
    }
    for o in &input.owners {
        for h in holders(&o.user_id) {
            add(&h, &o.tree_path, Level::Owner);
        }
    }
    for g in &input.grants {
        let level = if g.with_grant_option {
            Some(Level::Owner)
        } else if g.actions.iter().any(|a| a != "read") {
            Some(Level::Write)
        } else if g.actions.iter().any(|a| a == "read") {
            Some(Level::Read)
        } else {
            None
        };
        if let Some(level) = level {
            for h in holders(&g.user_id) {
                add(&h, &g.tree_path, level);
            }
        }
    }
    rights.sort();
    rights.dedup();
    rights
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "00000000-0000-7000-8000-000000000001";
    const ADMIN: &str = "00000000-0000-7000-8000-000000000002";
    const MEMBER: &str = "00000000-0000-7000-8000-000000000003";
    const MEMBER2: &str = "00000000-0000-7000-8000-000000000004";
    const DANGLING: &str = "00000000-0000-7000-8000-000000000000";

    fn user(
        id: &str,
        name: &str,
        identity: Option<&str>,
        can_login: bool,
        superuser: bool,
    ) -> EngineUserRow {
        EngineUserRow {
            id: id.into(),
            name: name.into(),
            identity_id: identity.map(Into::into),
            can_login,
            superuser,
            created_at: "2024-03-01T00:00:00Z".into(),
        }
    }

    fn grant(path: &str, user: &str, actions: &[&str], option: bool) -> TreeGrantRow {
        TreeGrantRow {
            tree_path: path.into(),
            user_id: user.into(),
            actions: actions.iter().map(|a| (*a).into()).collect(),
            with_grant_option: option,
        }
    }

    fn membership(role: &str, member: &str, admin: bool) -> RoleMembershipRow {
        RoleMembershipRow {
            role_id: role.into(),
            member_id: member.into(),
            with_admin_option: admin,
        }
    }

    fn member(id: &str, role: &str) -> OrgMemberRow {
        OrgMemberRow {
            identity_id: id.into(),
            role: role.into(),
        }
    }

    /// The team engine of the fixture: multi-member org, roles, grants, a service user, a dangling identity.
    fn team() -> EngineInput {
        EngineInput {
            engine: Some(EngineRow {
                id: "e0000000-0000-7000-8000-000000000000".into(),
                org_id: "o0000000-0000-7000-8000-000000000000".into(),
                slug: "teamengine02".into(),
                name: "team space".into(),
                language: "english".into(),
                created_at: "2024-03-01T00:00:00Z".into(),
            }),
            org_members: vec![
                member(OWNER, "owner"),
                member(ADMIN, "admin"),
                member(MEMBER, "member"),
                member(MEMBER2, "member"),
            ],
            invitations: vec![
                InvitationRow {
                    email: "invitee@example.com".into(),
                    role: "member".into(),
                    invited_by: OWNER.into(),
                    expires_at: "2100-01-01T00:00:00Z".into(),
                    created_at: "2024-03-02T00:00:00Z".into(),
                },
                InvitationRow {
                    email: "newadmin@example.com".into(),
                    role: "admin".into(),
                    invited_by: ADMIN.into(),
                    expires_at: "2100-01-01T00:00:00Z".into(),
                    created_at: "2024-03-02T00:00:00Z".into(),
                },
                InvitationRow {
                    email: "ghost@example.com".into(),
                    role: "member".into(),
                    invited_by: "00000000-0000-7000-8000-00000000dead".into(),
                    expires_at: "2100-01-01T00:00:00Z".into(),
                    created_at: "2024-03-02T00:00:00Z".into(),
                },
            ],
            users: vec![
                user("u-owner", "teamowner@example.com", Some(OWNER), true, true),
                user("u-admin", "teamadmin@example.com", Some(ADMIN), true, true),
                user("u-member", "member@example.com", Some(MEMBER), true, false),
                user(
                    "u-member2",
                    "member2@example.com",
                    Some(MEMBER2),
                    true,
                    false,
                ),
                user("u-reviewers", "reviewers", None, false, false),
                user("u-leads", "leads", None, false, false),
                user("u-orphan", "orphan-svc", Some(DANGLING), true, false),
                user("u-codex", "codex", None, true, false),
            ],
            owners: vec![TreeOwnerRow {
                tree_path: "team.alpha".into(),
                user_id: "u-member".into(),
            }],
            grants: vec![
                grant("docs", "u-member", &["read"], false),
                grant("archive", "u-member", &["delete"], false),
                grant("team.beta", "u-reviewers", &["create", "update"], false),
                grant("team.gamma", "u-reviewers", &["read"], true),
                grant("team.leads", "u-leads", &["read", "update"], false),
                grant("pb", "u-codex", &["read"], false),
                grant("team.shared", "u-codex", &["read", "create"], false),
                grant(
                    "secret",
                    "u-orphan",
                    &["read", "create", "update", "delete"],
                    false,
                ),
            ],
            memberships: vec![
                membership("u-reviewers", "u-member", true),
                membership("u-reviewers", "u-codex", false),
                membership("u-reviewers", "u-leads", false),
            ],
            identities: [OWNER, ADMIN, MEMBER, MEMBER2]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            owner_agents_elsewhere: Vec::new(),
            rules: AccessRules::default(),
        }
    }

    fn set(grants: &[(&str, Level)]) -> GrantSet {
        grants.iter().map(|(p, l)| (*p, *l)).collect()
    }

    #[test]
    fn multi_member_org_roster_and_admins() {
        let plan = plan_space(&team()).unwrap();
        let admins: Vec<&str> = plan
            .roster
            .iter()
            .filter(|(_, a)| *a)
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(admins, [OWNER, ADMIN]);
        let members: Vec<&str> = plan.roster.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            members,
            [
                OWNER,
                ADMIN,
                MEMBER,
                MEMBER2,
                "u-codex",
                "u-reviewers",
                "u-leads"
            ]
        );
        assert_eq!(plan.grants[OWNER].get(ROOT), Some(Level::Owner));
        assert_eq!(plan.grants[ADMIN].get(ROOT), Some(Level::Owner));
        assert_eq!(plan.grants[MEMBER].get(ROOT), None);
        assert_eq!(
            plan.grants[MEMBER2],
            set(&[(&home_path(MEMBER2), Level::Owner)])
        );
        assert_eq!(plan.agent_owner.as_deref(), Some(OWNER));
    }

    #[test]
    fn explicit_grants_map_over_permissively() {
        let plan = plan_space(&team()).unwrap();
        let m = &plan.grants[MEMBER];
        assert_eq!(m.get("team.alpha"), Some(Level::Owner), "tree_owner");
        assert_eq!(m.get("docs"), Some(Level::Read));
        assert_eq!(
            m.get("archive"),
            Some(Level::Write),
            "{{delete}} widens to write"
        );
        assert_eq!(m.get(&home_path(MEMBER)), Some(Level::Owner));
    }

    #[test]
    fn rbac_roles_become_groups_and_nested_roles_are_dropped() {
        let plan = plan_space(&team()).unwrap();
        let groups: Vec<&str> = plan
            .principals
            .iter()
            .filter(|p| p.kind == Kind::Group)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(groups, ["reviewers", "leads"]);
        assert_eq!(
            plan.grants["u-reviewers"],
            set(&[("team.beta", Level::Write), ("team.gamma", Level::Owner)])
        );
        assert_eq!(
            plan.group_members,
            [
                GroupMember {
                    group_id: "u-reviewers".into(),
                    member_id: MEMBER.into(),
                    admin: true
                },
                GroupMember {
                    group_id: "u-reviewers".into(),
                    member_id: "u-codex".into(),
                    admin: false
                },
            ]
        );
        assert!(plan.warnings.iter().any(|w| w.contains("nested role membership: role leads (u-leads) is a member of role reviewers (u-reviewers)")));
        // The member inherits the group's grants.
        let access = Access::new(&plan).user(MEMBER);
        assert!(access.reaches("team.beta.x", Level::Write));
        assert!(access.reaches("team.gamma", Level::Owner));
        assert!(
            !access.reaches("team.leads", Level::Read),
            "leads did not nest"
        );
    }

    #[test]
    fn service_user_becomes_an_agent_with_clamped_grants() {
        let plan = plan_space(&team()).unwrap();
        let agent = plan
            .principals
            .iter()
            .find(|p| p.kind == Kind::Agent)
            .unwrap();
        assert_eq!(
            (agent.id.as_str(), agent.name.as_str()),
            ("u-codex", "codex")
        );
        assert_eq!(agent.owner_id.as_deref(), Some(OWNER));
        assert!(
            plan.roster.contains(&("u-codex".to_owned(), false)),
            "joined, never admin"
        );
        assert_eq!(
            plan.grants["u-codex"],
            set(&[
                ("pb", Level::Read),
                ("team.shared", Level::Write),
                (&agent_home_path(OWNER, "u-codex"), Level::Owner),
            ]),
            "under the owner's owner@root every grant survives"
        );
        let access = Access::new(&plan).agent("u-codex");
        assert!(
            access.reaches("team.beta", Level::Write),
            "group grants reach the agent"
        );
        assert!(access.reaches("pb", Level::Read));
        assert!(!access.reaches("docs", Level::Read));
        assert!(!plan.warnings.iter().any(|w| w.contains("clamped")));
    }

    #[test]
    fn agent_grants_clamp_when_the_owner_holds_less() {
        // An org whose only migrated owner is... not an admin cannot exist (a space needs an
        // admin), so take an owner who is a plain member while another member is admin.
        let mut input = team();
        input.org_members = vec![member(MEMBER2, "member"), member(ADMIN, "admin")];
        input.users.retain(|u| u.id != "u-admin");
        let plan = plan_space(&input).unwrap();
        assert_eq!(
            plan.agent_owner.as_deref(),
            Some(MEMBER2),
            "no owner role: the first member"
        );
        assert_eq!(
            plan.grants["u-codex"],
            set(&[(&agent_home_path(MEMBER2, "u-codex"), Level::Owner)]),
            "grants outside the owner's access are clamped away"
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("clamped under its owner's access"))
        );
    }

    #[test]
    fn dangling_identity_is_dropped_with_a_warning() {
        let plan = plan_space(&team()).unwrap();
        assert!(!plan.grants.contains_key("u-orphan") && !plan.grants.contains_key(DANGLING));
        assert!(plan.principals.iter().all(|p| p.id != "u-orphan"));
        let warning = plan
            .warnings
            .iter()
            .find(|w| w.contains("dangling"))
            .unwrap();
        assert!(
            warning.contains(DANGLING) && warning.contains("orphan-svc"),
            "{warning}"
        );
    }

    #[test]
    fn invitations_need_a_migrated_inviter() {
        let plan = plan_space(&team()).unwrap();
        let invites: Vec<(&str, bool)> = plan
            .invitations
            .iter()
            .map(|i| (i.email.as_str(), i.admin))
            .collect();
        assert_eq!(
            invites,
            [
                ("invitee@example.com", false),
                ("newadmin@example.com", true)
            ]
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("ghost@example.com"))
        );
    }

    #[test]
    fn personal_engine_is_one_superuser_owner() {
        let input = EngineInput {
            engine: team().engine,
            org_members: vec![member(OWNER, "owner")],
            users: vec![user("u1", "owner1@example.com", Some(OWNER), true, true)],
            identities: [OWNER.to_owned()].into(),
            ..EngineInput::default()
        };
        let plan = plan_space(&input).unwrap();
        assert_eq!(plan.roster, [(OWNER.to_owned(), true)]);
        assert_eq!(
            plan.grants[OWNER],
            set(&[(ROOT, Level::Owner), (&home_path(OWNER), Level::Owner)])
        );
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn an_engine_without_an_admin_is_refused() {
        let mut input = team();
        input.org_members = vec![member(MEMBER, "member")];
        let err = plan_space(&input).unwrap_err();
        assert!(err.contains("no migrated org owner or admin"), "{err}");
    }

    #[test]
    fn clashing_agent_names_take_the_slug() {
        let mut input = team();
        input.owner_agents_elsewhere = vec!["Codex".into()];
        let plan = plan_space(&input).unwrap();
        let agent = plan
            .principals
            .iter()
            .find(|p| p.kind == Kind::Agent)
            .unwrap();
        assert_eq!(agent.name, "codex-teamengine02");
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("becomes agent `codex-teamengine02`"))
        );
    }

    #[test]
    fn the_rules_file_decides_homes_agent_owners_and_name_clashes() {
        let rules = |text: &str| AccessRules::parse(text).unwrap();
        let mut input = team();
        input.rules = rules("member_homes = none");
        let plan = plan_space(&input).unwrap();
        assert!(
            plan.grants
                .values()
                .all(|g| g.iter().all(|(path, _)| !path.starts_with("home."))),
            "no home grants: {:?}",
            plan.grants
        );

        let mut input = team();
        input.org_members.retain(|m| m.role != "owner");
        let plan = plan_space(&input).unwrap();
        assert_eq!(
            plan.agent_owner.as_deref(),
            Some(ADMIN),
            "the first migrated member"
        );
        input.rules = rules("agent_owner = org-owner");
        let plan = plan_space(&input).unwrap();
        assert_eq!(plan.agent_owner, None);
        assert!(!plan.principals.iter().any(|p| p.kind == Kind::Agent));
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("codex") && w.contains("agent_owner = org-owner"))
        );

        let mut input = team();
        input.owner_agents_elsewhere = vec!["Codex".into()];
        input.rules = rules("agent_name_clash = refuse");
        let err = plan_space(&input).unwrap_err();
        assert!(
            err.contains("codex twice") && err.contains("agent_name_clash = refuse"),
            "{err}"
        );
    }

    #[test]
    fn every_old_right_survives_in_the_effective_access() {
        let input = team();
        let plan = plan_space(&input).unwrap();
        let rights = old_rights(&input, &plan);
        let access = Access::new(&plan);
        for r in &rights {
            assert!(
                access.of(&r.principal).reaches(&r.path, r.level),
                "{r:?} lost"
            );
        }
        let codex: Vec<&OldRight> = rights.iter().filter(|r| r.principal == "u-codex").collect();
        assert_eq!(
            codex.len(),
            4,
            "pb, team.shared and the reviewers' two grants: {codex:?}"
        );
        assert!(
            rights
                .iter()
                .all(|r| r.principal != DANGLING && r.principal != "u-orphan")
        );
        assert!(rights.contains(&OldRight {
            principal: MEMBER.into(),
            path: "archive".into(),
            level: Level::Write
        }));
    }

    #[test]
    fn a_non_member_engine_user_keeps_dormant_grants() {
        let mut input = team();
        input.org_members.retain(|m| m.identity_id != MEMBER);
        let plan = plan_space(&input).unwrap();
        assert!(plan.grants.contains_key(MEMBER));
        assert!(
            Access::new(&plan).user(MEMBER).is_empty(),
            "not in the space: no access"
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("not a member of the org"))
        );
    }
}
