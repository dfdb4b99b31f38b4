//! Jobs: started by an accepted row, progressing, suspended, and ended (completing their row
//! or rolling it back).

use super::*;

impl World {
    pub(super) fn new_job(
        &mut self,
        host: &str,
        t: JobType,
        change: Option<PendingChange>,
        failure: Option<PlannedFailure>,
    ) -> JobId {
        let id = self.rng.guid();
        let pace = match self.pace {
            PaceMode::Time => Pace::Time {
                duration: self.profile.job_duration(t),
            },
            PaceMode::Polls(n) => Pace::Polls {
                needed: n.max(1),
                seen: 0,
            },
        };
        let job = Job {
            id: id.clone(),
            host: host.to_string(),
            job_type: t,
            state: JobState::New,
            percent: 0,
            submitted: self.now,
            last_change: self.now,
            ended: None,
            error_code: 0,
            error_description: String::new(),
            pace,
            failure,
            caption: t.label().to_string(),
            change,
            warning: None,
            scheduled: None,
            suspended_since: None,
            suspended_ms: 0,
        };
        let rule = job
            .change
            .as_ref()
            .map(|c| c.rule.id().to_string())
            .unwrap_or_default();
        if let Some(h) = self.hosts.get_mut(host) {
            h.jobs.insert(id.clone(), job);
            self.ensure_index();
            if let Some(ix) = self.index.as_mut() {
                ix.running.push((host.to_string(), id.clone()));
                ix.next_due = 0;
            }
        }
        self.emit(Event::JobStarted {
            at: self.now,
            host: host.to_string(),
            job: id.clone(),
            job_type: t,
            rule,
        });
        id
    }

    /// Ends a job: success applies its rule; failure and cancel restore the state before it.
    pub(super) fn end_job(
        &mut self,
        host: &str,
        job_id: &str,
        state: JobState,
        error_code: u16,
        description: String,
    ) {
        if state.succeeded()
            && let Some(why) = self.completion_blocked(host, job_id)
        {
            // The world changed under the job (another call took the recovery host): it fails
            // instead of completing on a stale check.
            return self.end_job(host, job_id, JobState::Exception, 32773, why);
        }
        let now = self.now;
        let Some(job) = self
            .hosts
            .get_mut(host)
            .and_then(|h| h.jobs.get_mut(job_id))
        else {
            return;
        };
        if !job.is_running() {
            return;
        }
        job.state = state;
        job.ended = Some(now);
        job.last_change = now;
        job.error_code = error_code;
        job.error_description = crate::text::clipped(description);
        if state.succeeded() {
            job.percent = 100;
        }
        let job_type = job.job_type;
        let retention = self.profile.job_retention_ms;
        if let Some(ix) = self.index.as_mut() {
            ix.running.retain(|(h, id)| !(h == host && id == job_id));
            ix.next_purge = ix.next_purge.min(now.saturating_add(retention));
            // The VM is free again: it may be due for a delta.
            ix.next_delta = 0;
        }
        let change = job.change.clone();
        if let Some(c) = change {
            if let Some(vm) = c.vm.as_deref()
                && let Some(v) = self.vm_mut(host, vm)
                && v.busy_with.as_deref() == Some(job_id)
            {
                v.busy_with = None;
            }
            if let Some((ph, pv)) = &c.peer
                && let Some(v) = self.vm_mut(ph, pv)
                && v.busy_with.as_deref() == Some(job_id)
            {
                v.busy_with = None;
            }
            let rule = c.rule.get();
            if state.succeeded() {
                let mut scratch = Answer::new();
                let rel = match rule.scope {
                    Scope::Vm(RelSel::NoRel) => None,
                    Scope::Vm(_) => Some(c.rel),
                    Scope::Host | Scope::Job => None,
                };
                self.finish_rule(
                    rule,
                    host,
                    c.vm.as_deref(),
                    rel,
                    &c.op,
                    &c.args,
                    &mut scratch,
                );
            } else if let (Some(vm), Some(rb)) = (c.vm.as_deref(), c.rollback.as_ref()) {
                self.set_mode(host, vm, rb.mode);
                if matches!(rule.scope, Scope::Vm(sel) if sel != RelSel::NoRel) {
                    self.set_state(host, vm, c.rel, rb.state);
                }
                if rule.effects.contains(&Effect::CreateTestReplica) {
                    let test = self.vm(host, vm).and_then(|v| v.test_replica.clone());
                    if let Some(t) = test {
                        self.destroy_test_vm(host, &t);
                    }
                }
            }
        }
        self.emit(Event::JobEnded {
            at: now,
            host: host.into(),
            job: job_id.into(),
            job_type,
            state,
            error_code,
        });
    }

    /// Guards that must still hold when a job completes, not only when it was accepted.
    pub(super) fn completion_blocked(&self, host: &str, job_id: &str) -> Option<String> {
        let c = self.job(host, job_id)?.change.as_ref()?;
        if !c.rule.get().guards.contains(&Guard::PeerHasNoCopy) {
            return None;
        }
        let vm = c.vm.as_deref().and_then(|id| self.vm(host, id));
        (!self.guard_holds(Guard::PeerHasNoCopy, host, vm, Some(c.rel), &c.op))
            .then(|| "the recovery host already holds this virtual machine".to_string())
    }

    /// When a running job is due to end (or fail), under time pacing.
    pub(super) fn due(job: &Job) -> Option<(Millis, bool)> {
        let Pace::Time { duration } = job.pace else {
            return None;
        };
        // A suspended job does not progress; time it spent suspended does not count.
        if job.suspended_since.is_some() {
            return None;
        }
        let start = job.started().saturating_add(job.suspended_ms);
        if let Some(f) = &job.failure {
            let at = start + duration * u64::from(f.after_percent.min(100)) / 100;
            return Some((at, false));
        }
        Some((start + duration, true))
    }

    /// Suspends a running job (JobState 5) or resumes a suspended one (DOC
    /// requeststatechange-msvm-concretejob: Suspend "stops the job temporarily", Start "changes
    /// the state to Running"). The table's guards decide which calls get here.
    pub(super) fn suspend_job(&mut self, host: &str, id: &str, suspend: bool) {
        let now = self.now;
        let Some(job) = self.hosts.get_mut(host).and_then(|h| h.jobs.get_mut(id)) else {
            return;
        };
        if suspend {
            job.suspended_since = Some(now);
            job.state = JobState::Suspended;
        } else if let Some(since) = job.suspended_since.take() {
            job.suspended_ms = job.suspended_ms.saturating_add(now.saturating_sub(since));
            job.state = JobState::Running;
        }
        job.last_change = now;
        self.generation += 1;
        if let Some(ix) = self.index.as_mut() {
            ix.next_due = 0;
        }
    }

    /// Builds the run index from the data (after a load, or the first time).
    pub(super) fn ensure_index(&mut self) {
        if self.index.is_none() {
            let running = self
                .hosts
                .values()
                .flat_map(|h| h.jobs.values())
                .filter(|j| j.is_running())
                .map(|j| (j.host.clone(), j.id.clone()))
                .collect();
            self.index = Some(RunIndex {
                running,
                next_purge: 0,
                next_delta: 0,
                next_due: 0,
            });
        }
    }

    pub(super) fn finish_job(&mut self, host: &str, id: &str, ok: bool) {
        if ok {
            // A planned warning: the job does its work and says so in 32768 (os-win treats it
            // as success); ErrorCode stays 0, as a successful job's must.
            match self.job(host, id).and_then(|j| j.warning.clone()) {
                Some(w) => self.end_job(host, id, JobState::CompletedWithWarnings, 0, w),
                None => self.end_job(host, id, JobState::Completed, 0, String::new()),
            }
        } else {
            let f = self.job(host, id).and_then(|j| j.failure.clone());
            let (code, text) = f.map_or((32768, String::new()), |f| (f.error_code, f.description));
            self.end_job(host, id, JobState::Exception, code, text);
        }
    }

    pub(super) fn refresh_progress(&mut self) {
        let now = self.now;
        self.ensure_index();
        let Some(index) = self.index.as_ref() else {
            return;
        };
        for (h, id) in &index.running {
            let Some(job) = self.hosts.get_mut(h).and_then(|h| h.jobs.get_mut(id)) else {
                continue;
            };
            if !job.is_running() || job.suspended_since.is_some() {
                continue;
            }
            // A scheduled job waits in New until its start time.
            if job.scheduled.is_some_and(|t| now < t) {
                continue;
            }
            let (state, pct) = match job.pace {
                Pace::Time { duration } => {
                    let elapsed = job.executed(now);
                    let pct = (elapsed * 100 / duration.max(1)).min(99) as u8;
                    // A job that was suspended has been started: DOC JobState 3 Starting "is
                    // moving from the 2 (New), 5 (Suspended) ... states into 4 (Running)".
                    if elapsed == 0 && job.suspended_ms == 0 {
                        (JobState::New, 0)
                    } else if pct < 10 {
                        (JobState::Starting, pct)
                    } else {
                        (JobState::Running, pct)
                    }
                }
                Pace::Polls { needed, seen } => {
                    let pct = (u64::from(seen) * 100 / u64::from(needed.max(1))).min(99) as u8;
                    match seen {
                        0 => (JobState::New, 0),
                        1 => (JobState::Starting, pct),
                        _ => (JobState::Running, pct),
                    }
                }
            };
            if job.state != state {
                job.last_change = now;
            }
            job.state = state;
            job.percent = pct;
        }
    }

    pub(super) fn purge_jobs(&mut self) {
        let (now, keep) = (self.now, self.profile.job_retention_ms);
        if self.index.as_ref().is_some_and(|ix| now < ix.next_purge) {
            return;
        }
        let mut next = Millis::MAX;
        for h in self.hosts.values_mut() {
            h.jobs.retain(|_, j| match j.ended {
                Some(e) if now.saturating_sub(e) >= keep => false,
                Some(e) => {
                    next = next.min(e.saturating_add(keep));
                    true
                }
                None => true,
            });
        }
        if let Some(ix) = self.index.as_mut() {
            ix.next_purge = next;
        }
    }

    /// A client read a job (`polls:N` pacing counts reads).
    pub fn observe_job(&mut self, host: &str, id: &str) {
        let Some(job) = self.hosts.get_mut(host).and_then(|h| h.jobs.get_mut(id)) else {
            return;
        };
        let Pace::Polls { needed, seen } = &mut job.pace else {
            return;
        };
        let waiting = job.scheduled.is_some_and(|t| self.now < t);
        if !job.state.is_terminal() && job.suspended_since.is_none() && !waiting {
            *seen += 1;
            let (seen, needed) = (*seen, *needed);
            let pct = (u64::from(seen) * 100 / u64::from(needed.max(1))) as u8;
            let fail_now = job.failure.as_ref().is_some_and(|f| pct >= f.after_percent);
            if fail_now {
                self.finish_job(host, id, false);
            } else if seen >= needed {
                self.finish_job(host, id, true);
            }
            self.refresh_progress();
        }
    }

    /// The time at which every running job will have ended under time pacing; polls-paced jobs
    /// are ended by reading them. For oracles and tests that want a quiescent world.
    pub fn settle(&mut self) {
        // A suspended job never ends by itself: settling resumes it, as a client's Start would.
        let suspended: Vec<(String, String)> = self
            .running_jobs()
            .filter(|j| j.suspended_since.is_some())
            .map(|j| (j.host.clone(), j.id.clone()))
            .collect();
        for (h, id) in suspended {
            self.suspend_job(&h, &id, false);
        }
        // A scheduled job starts at its time: time moves there first, so polls-paced ones
        // can then be read to their end.
        let scheduled = self.running_jobs().filter_map(|j| j.scheduled).max();
        if let Some(at) = scheduled.filter(|&t| t > self.now) {
            self.advance(at);
        }
        let running: Vec<(String, String)> = self
            .running_jobs()
            .filter(|j| matches!(j.pace, Pace::Polls { .. }))
            .map(|j| (j.host.clone(), j.id.clone()))
            .collect();
        for (h, id) in running {
            for _ in 0..10_000 {
                if self.job(&h, &id).is_none_or(|j| !j.is_running()) {
                    break;
                }
                self.observe_job(&h, &id);
            }
        }
        let latest = self
            .running_jobs()
            .filter_map(Self::due)
            .map(|(at, _)| at)
            .max();
        if let Some(at) = latest {
            self.advance(at.max(self.now));
        }
    }
}
