//! Waiting for an asynchronous method's `Msvm_ConcreteJob`.
//!
//! Only the CIM_ConcreteJob JobState meanings are used here (which states are terminal); what a
//! job's failure means for replication is the runner's business.

use std::time::{Duration, Instant};

use super::client::WsmanClient;
use super::error::{Result, WsmanError};
use super::ns;
use super::types::{EnumOpts, Instance, SelectorSet};

/// libvirt polls every 100 ms; so do we by default.
pub const DEFAULT_JOB_POLL: Duration = Duration::from_millis(100);
/// The job class polled.
pub const CONCRETE_JOB: &str = "Msvm_ConcreteJob";

/// JobState 7.
pub const JOB_COMPLETED: u16 = 7;

/// How a job is read on each poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStyle {
    /// WS-Transfer Get of `…/v2/Msvm_ConcreteJob` with selector `InstanceID`.
    Get,
    /// Enumerate `SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '<id>'` through `…/v2/*`,
    /// as libvirt does.
    Wql,
}

/// Where a JobState leaves the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    /// 2 New, 3 Starting, 4 Running, 5 Suspended, 6 Shutting Down.
    Running,
    /// 7 Completed, 32768 Completed with Warnings (os-win's jobutils counts it successful).
    Completed,
    /// 8 Terminated, 9 Killed, 10 Exception, 11 Service.
    Failed,
}

/// The CIM meaning of a JobState, `None` for values outside 2..=11 and 32768 (libvirt reports
/// those as an unknown invocation state rather than waiting forever).
pub fn job_phase(state: u16) -> Option<JobPhase> {
    match state {
        2..=6 => Some(JobPhase::Running),
        7 | 32768 => Some(JobPhase::Completed),
        8..=11 => Some(JobPhase::Failed),
        _ => None,
    }
}

/// A job that reached a terminal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobWait {
    /// The last instance read (terminal state).
    pub instance: Instance,
    /// Its JobState.
    pub final_state: u16,
    /// `(JobState, PercentComplete)` of every poll, in order, the terminal one included.
    pub observations: Vec<(u16, Option<u16>)>,
}

impl JobWait {
    /// The phase of the final state (an unknown state counts as failed).
    pub fn phase(&self) -> JobPhase {
        job_phase(self.final_state).unwrap_or(JobPhase::Failed)
    }

    /// Whether the job ended Completed (7).
    pub fn is_completed(&self) -> bool {
        self.final_state == JOB_COMPLETED
    }

    /// The job's ErrorCode.
    pub fn error_code(&self) -> Option<u32> {
        self.instance.u32("ErrorCode")
    }

    /// The job's ErrorDescription.
    pub fn error_description(&self) -> Option<&str> {
        self.instance.text("ErrorDescription")
    }
}

impl WsmanClient {
    /// Polls the job every `poll_every` until its JobState is terminal (7 to 11) and returns it,
    /// failed or not; the caller judges the outcome. Errors: the job cannot be read (fault,
    /// not found), its JobState is missing or unknown, or `timeout` passes first.
    pub async fn wait_for_job(
        &self,
        job_instance_id: &str,
        poll_every: Duration,
        timeout: Duration,
        style: PollStyle,
    ) -> Result<JobWait> {
        let start = Instant::now();
        let mut observations = Vec::new();
        loop {
            let instance = self.read_job(job_instance_id, style).await?;
            let state = instance.u16("JobState").ok_or_else(|| {
                WsmanError::protocol(format!(
                    "job {job_instance_id}: JobState missing or not a number: {:?}",
                    instance.get("JobState")
                ))
            })?;
            observations.push((state, instance.u16("PercentComplete")));
            match job_phase(state) {
                Some(JobPhase::Running) => {}
                Some(JobPhase::Completed | JobPhase::Failed) => {
                    return Ok(JobWait {
                        instance,
                        final_state: state,
                        observations,
                    });
                }
                None => {
                    return Err(WsmanError::protocol(format!(
                        "job {job_instance_id}: unknown JobState {state}"
                    )));
                }
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(WsmanError::JobTimeout {
                    instance_id: job_instance_id.to_string(),
                    waited,
                    last_state: Some(state),
                    observations,
                });
            }
            // Never sleep past the deadline: the last poll happens at the deadline itself.
            tokio::time::sleep(poll_every.min(timeout - waited)).await;
        }
    }

    /// One read of the job.
    pub async fn read_job(&self, job_instance_id: &str, style: PollStyle) -> Result<Instance> {
        match style {
            PollStyle::Get => {
                self.get(
                    &ns::class_uri(CONCRETE_JOB),
                    &SelectorSet::from([("InstanceID", job_instance_id)]),
                )
                .await
            }
            PollStyle::Wql => {
                // A quote or backslash would change the query; job ids are GUIDs, so refuse
                // rather than invent an escaping WMI might read differently.
                if job_instance_id.contains(['\'', '\\']) {
                    return Err(WsmanError::InvalidRequest(format!(
                        "job id {job_instance_id:?} cannot be put in a WQL string"
                    )));
                }
                let q =
                    format!("SELECT * FROM {CONCRETE_JOB} WHERE InstanceID = '{job_instance_id}'");
                let mut found = self
                    .enumerate_instances(&ns::ns_wildcard_uri(), Some(&q), &EnumOpts::default())
                    .await?;
                match found.len() {
                    0 => Err(WsmanError::JobNotFound {
                        instance_id: job_instance_id.to_string(),
                    }),
                    1 => Ok(found.remove(0)),
                    n => Err(WsmanError::protocol(format!(
                        "WQL for job {job_instance_id} returned {n} instances"
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        for s in 2..=6 {
            assert_eq!(job_phase(s), Some(JobPhase::Running));
        }
        assert_eq!(job_phase(7), Some(JobPhase::Completed));
        assert_eq!(job_phase(32768), Some(JobPhase::Completed));
        for s in 8..=11 {
            assert_eq!(job_phase(s), Some(JobPhase::Failed));
        }
        assert_eq!(job_phase(0), None);
        assert_eq!(job_phase(12), None);
    }
}
