//! Process limits, set before the proxy holds any secret: no core dumps (a core file or a
//! ptrace attach by another process of the same user would hand over AWS credentials and
//! tokens), and the soft file-descriptor limit raised to the hard one (every client and every
//! server connection is a descriptor; the default soft limit of 1024 is reached long before
//! the machine's).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What [`apply`] did, for the start-up log line.
#[derive(Debug)]
pub(super) struct Applied {
    pub open_files: Option<u64>,
    pub core_dumps: bool,
}

/// Core dumps held off before the settings (and their secrets) are read: the soft
/// `RLIMIT_CORE` at 0 and the process not dumpable, the hard limit kept so that
/// `allow_core_dumps` can undo it.
pub(super) struct HeldOff {
    before: Rlimit,
}

pub(super) fn hold_off_core_dumps() -> HeldOff {
    let before = getrlimit(Resource::Core);
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: before.maximum,
        },
    );
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    HeldOff { before }
}

/// Applies both once the settings are known; a failure is logged and the start goes on (a
/// container may forbid it).
pub(super) fn apply(held: HeldOff, allow_core_dumps: bool) -> Applied {
    let core_dumps = if allow_core_dumps {
        let _ = setrlimit(Resource::Core, held.before);
        let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable);
        true
    } else {
        !forbid_core_dumps()
    };
    Applied {
        open_files: raise_open_files(),
        core_dumps,
    }
}

/// `RLIMIT_CORE` 0 (soft and hard) and the dumpable flag off; true when both took.
fn forbid_core_dumps() -> bool {
    let limit = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let dumpable =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    for (what, result) in [("RLIMIT_CORE", limit), ("PR_SET_DUMPABLE", dumpable)] {
        if let Err(e) = &result {
            tracing::warn!(error = %e, what, "cannot turn core dumps off");
        }
    }
    limit.is_ok() && dumpable.is_ok()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
fn raise_open_files() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(e) => {
            tracing::warn!(error = %e, soft = ?limit.current, hard = ?limit.maximum, "cannot raise the open-files limit");
            limit.current
        }
    }
}
