//! What changed in the world, for journals, demos and live views. The engine records these;
//! the world holds the ones not yet drained.

use crate::enums::*;
use crate::params::{HostName, JobId, RelIx, VmId};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// Something that changed, for journals, demos and live views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StateChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        rel: RelIx,
        from: Option<ReplicationState>,
        to: Option<ReplicationState>,
    },
    ModeChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        from: ReplicationMode,
        to: ReplicationMode,
    },
    PowerChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        to: EnabledState,
    },
    JobStarted {
        at: Millis,
        host: HostName,
        job: JobId,
        job_type: JobType,
        rule: String,
    },
    JobEnded {
        at: Millis,
        host: HostName,
        job: JobId,
        job_type: JobType,
        state: JobState,
        error_code: u16,
    },
    VmCreated {
        at: Millis,
        host: HostName,
        vm: VmId,
        name: String,
    },
    VmRemoved {
        at: Millis,
        host: HostName,
        vm: VmId,
    },
}
