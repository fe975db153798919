//! Who may call what. Every call is made by a role, named by the caller's bearer token
//! ([`tokens`]); [`RPC_ROLES`] says which role each RPC needs, and the [`gate`] refuses the
//! rest before any handler runs. Worker calls are also tied to one registered worker
//! ([`worker_keys`]), so that a worker writes only for the leases it holds.
//!
//! A coordinator with no token at all (no `--token`, none created) is open: every caller is
//! an admin, as on one laptop under `allsweep run`. Once it has a token, every call needs one.

pub mod gate;
pub mod tokens;
pub mod worker_keys;

pub use gate::AccessLayer;
pub use tokens::{Caller, TokenBook};
pub use worker_keys::WorkerKeys;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Register, lease, heartbeat and report: for its own leases only.
    Worker,
    /// Submit, watch, cancel and read.
    User,
    /// Everything, and tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Worker, Role::User, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// Whether a caller of this role may make a call that needs `needed`: admins may make
    /// every call, the others only their own.
    pub fn permits(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every RPC and the role it needs. A path not listed here is refused (PERMISSION_DENIED)
/// for every caller, so a new RPC is closed until it is added. The README keeps this table.
pub const RPC_ROLES: &[(&str, Role)] = &[
    ("/allsweep.v1.WorkerService/Register", Role::Worker),
    ("/allsweep.v1.WorkerService/Lease", Role::Worker),
    ("/allsweep.v1.WorkerService/Heartbeat", Role::Worker),
    ("/allsweep.v1.WorkerService/StreamMetrics", Role::Worker),
    ("/allsweep.v1.WorkerService/UploadCheckpoint", Role::Worker),
    ("/allsweep.v1.WorkerService/DownloadCheckpoint", Role::Worker),
    ("/allsweep.v1.WorkerService/Complete", Role::Worker),
    ("/allsweep.v1.WorkerService/Fail", Role::Worker),
    ("/allsweep.v1.WorkerService/Release", Role::Worker),
    ("/allsweep.v1.UserService/Submit", Role::User),
    ("/allsweep.v1.UserService/GetSweep", Role::User),
    ("/allsweep.v1.UserService/ListSweeps", Role::User),
    ("/allsweep.v1.UserService/Cancel", Role::User),
    ("/allsweep.v1.UserService/Watch", Role::User),
    ("/allsweep.v1.UserService/ListWorkers", Role::User),
    ("/allsweep.v1.UserService/QueryResults", Role::User),
    ("/allsweep.v1.AdminService/CreateToken", Role::Admin),
    ("/allsweep.v1.AdminService/ListTokens", Role::Admin),
    ("/allsweep.v1.AdminService/RevokeToken", Role::Admin),
    ("/allsweep.v1.AdminService/DrainWorker", Role::Admin),
];

/// The RPCs any caller may make, without a token: the standard gRPC health service (what
/// Kubernetes gRPC probes and grpc_health_probe call) and server reflection (the API's
/// schema, which is public anyway, for generic clients such as grpcurl).
pub const OPEN_RPCS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The role an RPC path needs; `None` for a path that is not an RPC of this coordinator.
pub fn required_role(path: &str) -> Option<Role> {
    RPC_ROLES.iter().find(|(p, _)| *p == path).map(|&(_, role)| role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_do_everything_and_the_others_only_their_own() {
        for needed in Role::ALL {
            assert!(Role::Admin.permits(needed));
        }
        assert!(
            Role::User.permits(Role::User) && !Role::User.permits(Role::Worker) && !Role::User.permits(Role::Admin)
        );
        assert!(Role::Worker.permits(Role::Worker) && !Role::Worker.permits(Role::User));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn unknown_paths_need_no_role_that_exists() {
        assert_eq!(required_role("/allsweep.v1.UserService/Submit"), Some(Role::User));
        assert_eq!(required_role("/allsweep.v1.UserService/DropDatabase"), None);
    }
}
